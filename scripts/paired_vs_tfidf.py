"""Fine-tuned NSMC models against TF-IDF + LR on the same test reviews, paired.

    python scripts/paired_vs_tfidf.py NSMC_DIR PREDICTIONS.jsonl...

TF-IDF + LR is fitted exactly as `hanlm study` fits its full-NSMC baseline (all of
ratings_train.txt); each PREDICTIONS file is `hanlm predict` output on ratings_test.txt. Two
accuracies on the same 50,000 reviews are not independent samples, so the comparison counts the
reviews only one of the two gets right (exact McNemar test) and bootstraps the difference over
reviews.
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from hanlm.study.baselines import classify_texts
from hanlm.study.finetune import load_split


def main(nsmc_dir: str, prediction_files: list[str]) -> None:
    train, test = load_split("nsmc", {"train": Path(nsmc_dir) / "ratings_train.txt",
                                      "dev": Path(nsmc_dir) / "ratings_test.txt",
                                      "split": None, "limit": None})
    gold = np.array([str(e.label) for e in test])
    tfidf = np.array(classify_texts(train, test, seed=0)) == gold
    print(f"TF-IDF + LR: {tfidf.mean() * 100:.3f}% of {len(gold)} test reviews")
    resamples = np.random.default_rng(0).integers(0, len(gold), size=(2000, len(gold)))
    for path in prediction_files:
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
        if [r["id"] for r in rows] != [e.id for e in test]:
            sys.exit(f"{path}: not the predictions of {nsmc_dir}/ratings_test.txt in file order")
        model = np.array([str(r["label"]) for r in rows]) == gold
        wins, losses = int((model & ~tfidf).sum()), int((~model & tfidf).sum())
        p = binomtest(wins, wins + losses, 0.5).pvalue
        diffs = (model[resamples].mean(1) - tfidf[resamples].mean(1)) * 100
        low, high = np.percentile(diffs, [2.5, 97.5])
        print(f"{path}: {model.mean() * 100:.3f}%; right where TF-IDF is wrong {wins}, the "
              f"reverse {losses} (exact McNemar p = {p:.2g}); difference "
              f"{(model.mean() - tfidf.mean()) * 100:+.2f} points (paired bootstrap 95%: "
              f"{low:+.2f} to {high:+.2f})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
