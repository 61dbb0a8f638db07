#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): the GPU-marked tests, pretraining speed at base size in
# bf16 against the strongest Hugging Face setup, one fine-tuning run, and a JSON of the figures;
# about 8 minutes on one H100. `--dry-run` runs the same code on the CPU (BERT-tiny, a few
# steps), as CI does.
#   bash scripts/gpu_check.sh [--dry-run] [--output bench/results/gpu_check.json]
# It uses the machine's python3 as it is (a GPU machine's image has PyTorch with CUDA,
# transformers, accelerate and tokenizers, and nothing can be installed there): set PYTHON to
# use another, e.g. PYTHON=.venv/bin/python for the dry run here.
# The fine-tuning run reads $HANLM_SHARED_DATA/nsmc/ratings_train.txt (default ../shared/data);
# a lent device machine gets only the checkout, so hand it that one file through a git-ignored
# link and name the path through it in the device call's carry:
#   ln -sfn ../shared/data .gpu-data && echo /.gpu-data >> .git/info/exclude
#   command: HANLM_SHARED_DATA=.gpu-data bash scripts/gpu_check.sh --output $OUT/gpu_check.json
#   carry:   [".gpu-data/nsmc/ratings_train.txt"]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" -m bench.gpu_check "$@"
