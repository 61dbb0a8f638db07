#!/usr/bin/env bash
# Creates .venv (if needed) and installs hanlm, its study and dev extras, at the versions of
# constraints.txt into it. Sourced by demo.sh and test.sh; safe to run again (pip skips what is
# installed; it runs again when pyproject.toml or constraints.txt changes).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
if [ ! -x "$root/.venv/bin/python" ]; then
  "$python" -m venv "$root/.venv"
fi
# shellcheck disable=SC1091
source "$root/.venv/bin/activate"
stamp="$root/.venv/.hanlm-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ] \
    || [ "$root/constraints.txt" -nt "$stamp" ]; then
  python -m pip install -q --upgrade pip
  # constraints.txt pins torch==2.13.0, the CPU build here (see the comment there): an unpinned
  # torch pulls a multi-GB CUDA build.
  python -m pip install -q -c "$root/constraints.txt" -e "$root[dev,study]"
  touch "$stamp"
fi
