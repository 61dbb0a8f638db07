#!/usr/bin/env bash
# Set-up + the main job: tokenizer -> data -> pretrain a tiny BERT (~4 min) -> export -> fill-mask,
# on the embedded Korean Constitution. No download beyond the Python packages.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
exec hanlm demo "$@"
