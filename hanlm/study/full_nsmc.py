"""Full NSMC (`hanlm study --full-nsmc`): the review-pretrained model of each objective and
random init fine-tuned on all of NSMC, and compared with TF-IDF + LR on the same 50,000 test
reviews, paired.

A run fine-tunes on `ratings_train.txt` with 7,500 of its reviews held out for model selection
(`--split-dev 42:0.05`: the test file is never looked at while training), 2 epochs, lr 5e-4, then
scores all of `ratings_test.txt` once. TF-IDF + LR is fitted on all 150,000 training reviews, as
the study's full-NSMC baseline. Two accuracies on the same reviews are not independent samples,
so the comparison counts the reviews only one of the two gets right (exact McNemar test) and
bootstraps the difference over reviews.

Each run is reused only when made with the same settings from the same model weights and files
(as the study's other fine-tuning runs, `hanlm.study.finetune`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hanlm import atomic
from hanlm.errors import HanlmError
from hanlm.study.cache import Timings
from hanlm.study.config import StudyConfig
from hanlm.study.corpora import Sources
from hanlm.study.plan import RunSpec, full_nsmc_specs
from hanlm.study.workdir import WorkDir

logger = logging.getLogger(__name__)

SPLIT_DEV = "42:0.05"  # 7,500 of the 150,000 training reviews held out for model selection
EPOCHS = 2.0
LR = 5e-4
BOOTSTRAP_RESAMPLES = 2000
PREDICTIONS = "test-predictions.jsonl"
TEST_METRICS = "test-metrics.json"


# ------------------------------------------------------------------------------ paired test


def correct(labels: Sequence[str], gold: np.ndarray) -> np.ndarray:
    return np.array([str(label) for label in labels]) == gold


def read_predictions(path: Path, test: Sequence[Any]) -> list[str]:
    """The labels of a `hanlm predict`/`evaluate --predictions` file of the test examples,
    refused unless it holds exactly their ids in file order."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    if [r["id"] for r in rows] != [e.id for e in test]:
        raise HanlmError("not the predictions of the NSMC test file in file order", path=str(path))
    return [str(r["label"]) for r in rows]


def paired(model: np.ndarray, tfidf: np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES,
           seed: int = 0) -> dict[str, Any]:
    """A model against TF-IDF on the same examples (`model`, `tfidf`: correct or not, per
    example): accuracies, the examples only one gets right, the exact McNemar p, and the
    difference in points with its paired-bootstrap 95% interval."""
    from scipy.stats import binomtest

    wins, losses = int((model & ~tfidf).sum()), int((~model & tfidf).sum())
    p = binomtest(wins, wins + losses, 0.5).pvalue if wins + losses else 1.0
    draws = np.random.default_rng(seed).integers(0, len(model), size=(resamples, len(model)))
    diffs = (model[draws].mean(1) - tfidf[draws].mean(1)) * 100
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"accuracy": float(model.mean() * 100), "tfidf_accuracy": float(tfidf.mean() * 100),
            "difference": float((model.mean() - tfidf.mean()) * 100),
            "right_where_tfidf_wrong": wins, "wrong_where_tfidf_right": losses,
            "mcnemar_p": float(p), "bootstrap_95": [float(low), float(high)]}


def paired_line(name: str, r: dict[str, Any]) -> str:
    return (f"{name}: {r['accuracy']:.3f}%; right where TF-IDF is wrong "
            f"{r['right_where_tfidf_wrong']}, the reverse {r['wrong_where_tfidf_right']} (exact "
            f"McNemar p = {r['mcnemar_p']:.2g}); difference {r['difference']:+.2f} points (paired "
            f"bootstrap 95%: {r['bootstrap_95'][0]:+.2f} to {r['bootstrap_95'][1]:+.2f})")


def tfidf_full(train: Sequence[Any], test: Sequence[Any], seed: int = 0) -> list[str]:
    """TF-IDF + LR fitted on every training review, as the study's full-NSMC baseline."""
    from hanlm.study.baselines import classify_texts

    return [str(label) for label in classify_texts(train, test, seed=seed)]


def compare_files(nsmc_dir: Path, prediction_files: Sequence[Path]) -> list[str]:
    """What scripts/paired_vs_tfidf.py prints: TF-IDF's accuracy, then one line a file."""
    from hanlm.study.finetune import load_split

    train, test = load_split("nsmc", {"train": nsmc_dir / "ratings_train.txt",
                                      "dev": nsmc_dir / "ratings_test.txt",
                                      "split": None, "limit": None})
    gold = np.array([str(e.label) for e in test])
    tfidf = correct(tfidf_full(train, test), gold)
    lines = [f"TF-IDF + LR: {tfidf.mean() * 100:.3f}% of {len(gold)} test reviews"]
    for path in prediction_files:
        model = correct(read_predictions(Path(path), test), gold)
        lines.append(paired_line(str(path), paired(model, tfidf)))
    return lines


# ------------------------------------------------------------------------------ the stage


def run_config(cfg: StudyConfig, spec: RunSpec, model_dir: Path, sources: Sources,
               out: Path) -> Any:
    from hanlm.tasks.config import DataOptions, FinetuneConfig
    from hanlm.train.config import FinetuneOptimConfig

    return FinetuneConfig(
        task="nsmc", train=str(sources.nsmc_train), model=str(model_dir), out=str(out),
        dropout=cfg.finetune_dropout, options=DataOptions(split_dev=SPLIT_DEV, max_len=cfg.max_len),
        epochs=EPOCHS, batch_size=cfg.finetune_batch_size, keep_checkpoints=1, seed=spec.seed,
        progress=False, tensorboard=False, optim=FinetuneOptimConfig(lr=LR))


def _tfidf_labels(cfg: StudyConfig, work: WorkDir, sources: Sources, train: Sequence[Any],
                  test: Sequence[Any], timings: Timings) -> list[str]:
    """TF-IDF's label of every test review, kept in the work directory (keyed by the files'
    sha256 and the seed)."""
    from hanlm.study.finetune import input_digests

    path = work.baseline("nsmc-full-predictions")
    made_from = {"files": input_digests({"train": sources.nsmc_train, "dev": sources.nsmc_test}),
                 "seed": cfg.seed}
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if saved is None or saved.get("made_from") != made_from:
        start = time.perf_counter()
        saved = {"made_from": made_from, "labels": tfidf_full(train, test, seed=cfg.seed)}
        timings.record("full-nsmc/tfidf", time.perf_counter() - start)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(saved))
    return saved["labels"]


def _run(cfg: StudyConfig, work: WorkDir, sources: Sources, model_dir: Path, spec: RunSpec,
         test: Sequence[Any]) -> tuple[dict[str, Any], list[str], bool]:
    """One run: (its metrics.json, its label of every test review, whether it was cached)."""
    from hanlm.study.finetune import INPUTS_FILE, finished_with, input_digests
    from hanlm.tasks.config import DataOptions, EvaluateConfig
    from hanlm.tasks.run import evaluate, finetune

    out = work.finetune(spec.name)
    run_cfg = run_config(cfg, spec, model_dir, sources, out)
    digests = input_digests({"train": sources.nsmc_train, "dev": sources.nsmc_test}, model_dir)
    saved = out / INPUTS_FILE
    cached = (finished_with(out, run_cfg) and (out / PREDICTIONS).is_file()
              and saved.is_file() and json.loads(saved.read_text(encoding="utf-8")) == digests)
    if not cached:
        if out.exists():
            shutil.rmtree(out)
        finetune(run_cfg)
        evaluate(EvaluateConfig(task="nsmc", data=str(sources.nsmc_test), model=str(out),
                                output=str(out / TEST_METRICS), predictions=str(out / PREDICTIONS),
                                options=DataOptions(max_len=cfg.max_len),
                                # scores that do not depend on what `auto` measured
                                precision="fp32"))
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        if not cfg.keep_models:
            shutil.rmtree(out / "model", ignore_errors=True)
        atomic.write_text(saved, json.dumps(digests, indent=2))
    summary = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return summary, read_predictions(out / PREDICTIONS, test), cached


def full_nsmc_stage(cfg: StudyConfig, work: WorkDir, sources: Sources, models: dict[str, Path],
                    timings: Timings) -> dict[str, Any] | None:
    """Every full-NSMC run and its paired comparison with TF-IDF (None without --full-nsmc)."""
    from hanlm.study.finetune import load_split

    specs = full_nsmc_specs(cfg)
    if not specs:
        return None
    train, test = load_split("nsmc", {"train": sources.nsmc_train, "dev": sources.nsmc_test,
                                      "split": None, "limit": None})
    gold = np.array([str(e.label) for e in test])
    tfidf = correct(_tfidf_labels(cfg, work, sources, train, test, timings), gold)
    runs = []
    for i, spec in enumerate(specs, 1):
        start = time.perf_counter()
        summary, labels, cached = _run(cfg, work, sources, models[spec.model], spec, test)
        if not cached:
            timings.record(f"finetune/{spec.name}", time.perf_counter() - start)
        result = paired(correct(labels, gold), tfidf)
        logger.info("[full NSMC %d/%d] %s", i, len(specs),
                    paired_line(spec.name, result) + (" (cached)" if cached else ""))
        runs.append({"model": spec.model, "seed": spec.seed, **result,
                     "held_out_accuracy": summary["dev"][summary["main_metric"]],
                     "steps": summary["steps"], "train_examples": summary["train_examples"],
                     "held_out_examples": summary["dev_examples"], "test_examples": len(gold),
                     "seconds": summary["wall_seconds"]})
    return {"split_dev": SPLIT_DEV, "epochs": EPOCHS, "lr": LR, "test_examples": len(gold),
            "tfidf_accuracy": float(tfidf.mean() * 100), "tfidf_train_examples": len(train),
            "runs": runs}
