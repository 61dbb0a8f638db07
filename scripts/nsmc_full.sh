#!/usr/bin/env bash
# The domain study's review-pretrained and random-init models fine-tuned on all of NSMC (142,500
# training reviews, 7,500 held out for model selection) and scored on all 50,000 test reviews,
# then compared with TF-IDF + LR on the same reviews, paired (docs/RESULTS.md, "Full NSMC").
#   bash scripts/nsmc_full.sh [STUDY_WORK_DIR] [OUT]    (SEEDS="42 2 3" by default)
# ~4 minutes a run on 2 CPU cores (8 minutes a seed). Run it after `hanlm study`, from the
# checkout's root. `hanlm study --full-nsmc` makes the same runs as a stage of the study (cached,
# with every objective's review model, in its report); this script is for a finished work dir.
set -euo pipefail
work="${1:-study-work/default}"
out="${2:-runs/nsmc-full}"
data="${HANLM_SHARED_DATA:-../shared/data}/nsmc"
for seed in ${SEEDS:-42 2 3}; do
  for model in review random; do
    run="$out/$model-seed$seed"
    hanlm finetune --task nsmc --train "$data/ratings_train.txt" --split-dev 42:0.05 \
      --model "$work/model-$model" --out "$run" --epochs 2 --lr 5e-4 --seed "$seed" --no-progress
    hanlm evaluate --task nsmc --data "$data/ratings_test.txt" --model "$run"
    hanlm predict --task nsmc --model "$run" --input "$data/ratings_test.txt" \
      --output "$run/test-predictions.jsonl"
  done
done
python "$(dirname "$0")/paired_vs_tfidf.py" "$data" "$out"/*/test-predictions.jsonl
