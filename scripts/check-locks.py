"""Are the lock files (written by `make lock`) up to date with the requirements files they come from?

    python3 scripts/check-locks.py      # exit 1 naming every stale lock; `make setup` runs it first

Checks, for each pair of LOCKS: every pin of the requirements file (and of the files it includes with -r)
is in the lock at the same version; every package the lock says comes from a requirements file is still
pinned there; every package is pinned with == and carries a sha256 hash; a package has one version across
all the locks. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# requirements file -> its lock, in the order `make lock` writes them
LOCKS = {
    "requirements-tools.txt": "requirements-tools.lock",
    "requirements-dev.txt": "requirements-dev.lock",
    "requirements.txt": "requirements.lock",
    "requirements-ui.txt": "requirements-ui.lock",
    "jobs/label_conversations/requirements.txt": "jobs/label_conversations/requirements.lock",
}
FIX = "run `make lock` and commit the *.lock files"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#\\]+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_pins(
    path: Path, root: Path = REPO, seen: frozenset[Path] = frozenset()
) -> dict[str, tuple[str, str]]:
    """{normalized name: (version, file it is pinned in)} of a requirements file and its -r includes."""
    pins: dict[str, tuple[str, str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            include = (path.parent / line.split(None, 1)[1]).resolve()
            if include not in seen:
                pins.update(requirement_pins(include, root, seen | {path.resolve()}))
            continue
        if line.startswith("-"):
            continue
        match = _PIN.match(line)
        if not match:
            raise SystemExit(
                f"{path.relative_to(root)}: {raw!r} is not pinned with == (a lock needs exact pins)"
            )
        pins[normalize(match.group(1))] = (match.group(2), str(path.relative_to(root)))
    return pins


def lock_entries(path: Path) -> dict[str, dict]:
    """{normalized name: {"version", "hashes", "via"}} of a lock file written by uv pip compile."""
    entries: dict[str, dict] = {}
    current = None
    in_via = False
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        if not line.startswith((" ", "#")):
            spec = line.rstrip("\\").strip()
            name, _, version = spec.partition("==")
            current = entries.setdefault(
                normalize(name.split("[")[0]),
                {"line": spec, "version": version.split(";")[0].strip(), "hashes": [], "via": []},
            )
            in_via = False
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.startswith("--hash=sha256:"):
            current["hashes"].append(stripped.rstrip("\\").strip())
        elif stripped.startswith("# via"):
            in_via = True
            rest = stripped[len("# via") :].strip()
            if rest:
                current["via"].append(rest)
        elif in_via and stripped.startswith("#"):
            current["via"].append(stripped.lstrip("#").strip())
    return entries


def problems(root: Path = REPO) -> list[str]:
    found: list[str] = []
    versions: dict[str, dict[str, str]] = {}  # package -> {lock: version}
    for source, lock in LOCKS.items():
        source_path, lock_path = root / source, root / lock
        if not lock_path.is_file():
            found.append(f"{lock} is missing")
            continue
        pins = requirement_pins(source_path, root)
        entries = lock_entries(lock_path)
        for name, (version, where) in sorted(pins.items()):
            entry = entries.get(name)
            if entry is None:
                found.append(f"{lock}: lacks {name}=={version} ({where})")
            elif entry["version"] != version:
                found.append(f"{lock}: {name}=={entry['version']}, but {where} pins {version}")
        for name, entry in sorted(entries.items()):
            if not entry["version"]:
                found.append(f"{lock}: {entry['line']!r} is not pinned with ==")
            if not entry["hashes"]:
                found.append(f"{lock}: {name} has no --hash")
            for via in entry["via"]:
                if via.startswith("-r ") and name not in pins:
                    found.append(f"{lock}: {name} comes from {via[3:]}, which no longer pins it")
            versions.setdefault(name, {})[lock] = entry["version"]
    for name, by_lock in sorted(versions.items()):
        if len(set(by_lock.values())) > 1:
            found.append(f"{name} has different versions in the locks: {by_lock}")
    return found


def main() -> int:
    found = problems()
    if found:
        print("stale lock files (" + FIX + "):\n  " + "\n  ".join(found), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
