"""Module boundaries: production code imports nothing from the embedded stack or the reference job.

Production code is the DAG files and ``label_backfill`` minus ``dev/``. It must not import
``label_backfill.dev`` (embedded Postgres, chdb, simulator, local runner) nor ``label_conversations`` (the
reference job, a stand-in for the production image). The rule is checked on the import graph: every
``import``/``from ... import`` of every production module, function-level ones included, resolved to
module names (relative imports too, and string imports through ``importlib.import_module``/``__import__``/
``runpy``), then once more at run time on a real import of everything with the Kubernetes runner.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.unit

PLUGINS = REPO / "plugins"
PACKAGE = PLUGINS / "label_backfill"
FORBIDDEN = ("label_backfill.dev", "label_conversations")
# The sanctioned seams (source file -> the dev module it may import), each a function-level import only:
ALLOWED = {
    # the backfill DAG loads the embedded stack's day runner when the deployment says
    # LABEL_BACKFILL_JOB_RUNNER=local (a setting read at parse time, no I/O); with the Kubernetes runner
    # nothing of dev/ is loaded (checked at run time below)
    ("dags/conversation_labels_backfill.py", "label_backfill.dev.local_runner"),
    # the deprecated ``python -m label_backfill.compare`` forwards to ``python -m label_backfill.dev.compare``;
    # a ``__main__`` runs only as a command (importing label_backfill.compare never imports it, and no
    # production module may import it: test_no_production_module_imports_an_entry_point)
    ("plugins/label_backfill/compare/__main__.py", "label_backfill.dev.compare"),
}
_STRING_IMPORTERS = {"import_module", "__import__", "run_module"}


@dataclass(frozen=True)
class Edge:
    source: str  # path relative to the repository
    target: str  # imported module (or module.name for ``from module import name``)
    line: int
    in_function: bool

    def __str__(self) -> str:
        return f"{self.source}:{self.line} -> {self.target}"


def _module_name(path: Path) -> tuple[str, bool]:
    """(dotted module name, is a package ``__init__``) of a file under plugins/ or dags/."""
    if path.is_relative_to(PLUGINS):
        parts = list(path.relative_to(PLUGINS).with_suffix("").parts)
    else:
        parts = [path.stem]
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def production_files() -> list[Path]:
    """The DAG files and every module of label_backfill except dev/."""
    files = sorted((REPO / "dags").glob("*.py"))
    files += sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "dev")
    assert len(files) > 10, files
    return files


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    if not level:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def import_edges(path: Path) -> list[Edge]:
    """Every import of one file, at any depth (functions, methods, ``if`` blocks, ``try`` blocks)."""
    module, is_package = _module_name(path)
    source = str(path.relative_to(REPO))
    edges: list[Edge] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            edges.extend(Edge(source, a.name, node.lineno, in_function) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            edges.append(Edge(source, base, node.lineno, in_function))
            # ``from package import name`` imports the submodule package.name when there is one
            edges.extend(Edge(source, f"{base}.{a.name}", node.lineno, in_function) for a in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in _STRING_IMPORTERS and node.args and isinstance(node.args[0], ast.Constant):
                if isinstance(node.args[0].value, str):
                    edges.append(Edge(source, node.args[0].value, node.lineno, in_function))
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return edges


def _is_under(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def forbidden(edge: Edge) -> bool:
    return any(_is_under(edge.target, prefix) for prefix in FORBIDDEN)


def allowed(edge: Edge) -> bool:
    return any(edge.source == source and _is_under(edge.target, seam) for source, seam in ALLOWED)


def test_import_walk_sees_every_kind_of_import(tmp_path, monkeypatch):
    """The walker itself: module-level, function-level, relative and string imports all resolve."""
    package = tmp_path / "plugins" / "label_backfill" / "compare"
    package.mkdir(parents=True)
    module = package / "probe.py"
    module.write_text(
        "import label_conversations.job\n"
        "from label_backfill import dev\n"
        "def f():\n"
        "    from ..dev.stack import default_stack\n"
        "    import importlib\n"
        "    importlib.import_module('label_backfill.dev.simulate')\n"
        "class C:\n"
        "    def m(self):\n"
        "        from label_conversations import run\n"
        "from . import diff\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PLUGINS", tmp_path / "plugins")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    found = {(e.target, e.in_function) for e in import_edges(module) if forbidden(e)}
    assert found == {
        ("label_conversations.job", False),
        ("label_backfill.dev", False),
        ("label_backfill.dev.stack", True),
        ("label_backfill.dev.stack.default_stack", True),
        ("label_backfill.dev.simulate", True),
        ("label_conversations", True),
        ("label_conversations.run", True),
    }
    assert ("label_backfill.compare.diff", False) in {(e.target, e.in_function) for e in import_edges(module)}


def test_production_modules_import_nothing_from_dev_or_the_reference_job():
    violations = [
        str(edge)
        for path in production_files()
        for edge in import_edges(path)
        if forbidden(edge) and not allowed(edge)
    ]
    assert violations == [], "production module -> forbidden import:\n" + "\n".join(violations)


def test_the_sanctioned_seams_are_function_level_imports_only():
    seams = [edge for path in production_files() for edge in import_edges(path) if allowed(edge)]
    used = {
        (src, seam) for src, seam in ALLOWED for e in seams if e.source == src and _is_under(e.target, seam)
    }
    assert used == ALLOWED, f"sanctioned seam(s) no longer used, drop them from ALLOWED: {ALLOWED - used}"
    assert all(edge.in_function for edge in seams), [str(e) for e in seams if not e.in_function]


def test_no_production_module_imports_an_entry_point():
    entry_points = [
        edge
        for path in production_files()
        for edge in import_edges(path)
        if edge.target.endswith(".__main__") or edge.target == "__main__"
    ]
    assert entry_points == []


def test_no_module_of_the_package_shadows_an_importable_top_level_module():
    """Airflow's plugin loader imports every file under the plugins folder by its bare file name (unless
    ``.airflowignore``\\d): a ``kubernetes.py`` there becomes ``sys.modules['kubernetes']``."""
    shadowing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.stem in {"__init__", "__main__"}:
            continue
        spec = importlib.util.find_spec(path.stem)
        # a bare folder on sys.path (e.g. ./reports after make demo) is a namespace package, not a module
        if spec is not None and spec.origin is not None:
            shadowing.append(f"{path.relative_to(REPO)} shadows {spec.name} ({spec.origin})")
    assert shadowing == []


_LOADED = """
import importlib, json, pathlib, sys
from airflow.dag_processing.dagbag import DagBag
package = pathlib.Path(sys.argv[1])
for path in sorted(package.rglob('*.py')):
    parts = path.relative_to(package.parent).with_suffix('').parts
    if 'dev' in parts[:2] or parts[-1] == '__main__':
        continue
    importlib.import_module('.'.join(parts[:-1] if parts[-1] == '__init__' else parts))
bag = DagBag(dag_folder=sys.argv[2])
assert not bag.import_errors, bag.import_errors
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {'label_backfill', 'label_conversations'})))
"""


@pytest.mark.parametrize("runner", ["kubernetes", "local"])
def test_what_importing_everything_loads(runner):
    """At run time: with the Kubernetes runner nothing of dev/ or the job is loaded; with the local runner,
    only the local runner module of dev/ (not the embedded stack, not the job, until a day executes)."""
    env = {**os.environ, "LABEL_BACKFILL_JOB_RUNNER": runner}
    out = subprocess.run(
        [sys.executable, "-c", _LOADED, str(PACKAGE), str(REPO / "dags")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    ).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    outside = [m for m in loaded if any(_is_under(m, prefix) for prefix in FORBIDDEN)]
    if runner == "kubernetes":
        assert outside == []
    else:
        assert outside == ["label_backfill.dev", "label_backfill.dev.local_runner"]


def test_the_deprecated_compare_command_forwards_to_dev_with_a_warning():
    done = subprocess.run(
        [sys.executable, "-m", "label_backfill.compare", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "usage: python -m label_backfill.dev.compare" in done.stdout
    assert "FutureWarning" in done.stderr and "use `python -m label_backfill.dev.compare`" in done.stderr
