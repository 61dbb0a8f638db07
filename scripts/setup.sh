#!/usr/bin/env bash
# Creates .venv (if needed) and installs hanlm with its pinned dependencies into it.
# Sourced by demo.sh and test.sh; safe to run again (pip skips what is installed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
if [ ! -x "$root/.venv/bin/python" ]; then
  "$python" -m venv "$root/.venv"
fi
# shellcheck disable=SC1091
source "$root/.venv/bin/activate"
stamp="$root/.venv/.hanlm-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  python -m pip install -q --upgrade pip
  # torch is pinned (==2.13.0) in pyproject.toml: an unpinned torch pulls a multi-GB CUDA build.
  python -m pip install -q -e "$root[dev]"
  touch "$stamp"
fi
