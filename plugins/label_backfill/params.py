"""Checks on a run's conf that hold for every DAG of the package (the per-param rules live with each DAG)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from label_backfill.naming import InvalidInput


def refuse_unknown_keys(conf: Mapping[str, Any] | None, known: Iterable[str]) -> None:
    """Raise ``InvalidInput`` naming every conf key the DAG does not define, with the closest known key.

    A typo such as ``dryrun`` for ``dry_run`` would otherwise be ignored and the run would do the real thing.

    :param conf: the run's conf (``dag_run.conf``), as the user sent it.
    :param known: the DAG's param names.
    """
    known = sorted(known)
    unknown = sorted(set(conf or {}) - set(known))
    if not unknown:
        return
    named = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        named.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise InvalidInput(
        f"unknown param {', '.join(named)}: refused before anything ran; this DAG takes {', '.join(known)}"
    )
