"""Deprecated: ``python -m label_backfill.compare`` is now ``python -m label_backfill.dev.compare``.

The comparison CLI reads the embedded stack, so it moved to ``label_backfill.dev``. This module runs only as
a command (``import label_backfill.compare`` never imports a ``__main__``), so forwarding to dev/ here loads
nothing of the embedded stack into production code.
"""

from __future__ import annotations

import sys
import warnings


def main(argv: list[str] | None = None) -> int:
    warnings.warn(
        "`python -m label_backfill.compare` is deprecated: use `python -m label_backfill.dev.compare`",
        FutureWarning,  # the category Python shows to the users of a command by default
        stacklevel=1,
    )
    from label_backfill.dev.compare import main as compare_main

    return compare_main(argv)


if __name__ == "__main__":
    sys.exit(main())
