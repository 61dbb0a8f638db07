#!/usr/bin/env bash
# Set-up + the whole test suite (unit tests, end-to-end CLI runs, and the tier on ../shared/data,
# which skips with a reason when that folder is absent).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
ruff check hanlm tests bench scripts
exec python -m pytest "$@"
