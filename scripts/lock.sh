#!/usr/bin/env bash
# make lock: write every lock file from the hand-edited requirements files, with uv (pinned, hash-checked,
# in requirements-tools.txt). Run it after changing any requirements*.txt; commit the *.lock files with it.
#
#   requirements-tools.txt                    -> requirements-tools.lock     pip, setuptools, uv (make setup's first step)
#   requirements-dev.txt                      -> requirements-dev.lock       make setup (production + job + dev tools)
#   requirements.txt                          -> requirements.lock           the Airflow image, tests/package
#   requirements-ui.txt                       -> requirements-ui.lock        make test-ui
#   jobs/label_conversations/requirements.txt -> .../requirements.lock       the job image (and the laptop image)
#
# Every package of each install set is pinned with the sha256 of every file PyPI has for that version (any
# platform), so `pip install --require-hashes` refuses anything else. The dev lock is resolved first; the
# others are constrained by it, so a package has one version in every lock (the one the tests ran). uv keeps
# the versions already in a lock unless asked: `make lock LOCK_ARGS=--upgrade` (everything) or
# `LOCK_ARGS="--upgrade-package NAME"`. Resolved for CPython 3.11 on glibc 2.36 x86_64 (Debian 12: these
# machines and both images' base); wheels only (`--no-build`: no package's own code runs to resolve it).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
UV="${UV:-$REPO/.venv/bin/uv}"
read -ra extra <<< "${LOCK_ARGS:-}"
compile() { # compile INPUT OUTPUT [uv options...]
  local input="$1" output="$2"
  shift 2
  "$UV" pip compile --quiet "$input" --output-file "$output" --generate-hashes --no-build \
    --python-version 3.11 --python-platform x86_64-manylinux_2_36 \
    --custom-compile-command "make lock" "${extra[@]}" "$@"
  echo "lock: $output ($(grep -c '^[A-Za-z0-9]' "$output") packages)"
}
compile requirements-tools.txt requirements-tools.lock
compile requirements-dev.txt requirements-dev.lock
compile requirements.txt requirements.lock --constraint requirements-dev.lock
compile requirements-ui.txt requirements-ui.lock --constraint requirements-dev.lock
compile jobs/label_conversations/requirements.txt jobs/label_conversations/requirements.lock \
  --constraint requirements-dev.lock
python3 scripts/check-locks.py
