"""The settings of `hanlm study`: one dataclass whose defaults are the default study.

Other modes are YAML files of the settings that differ (`hanlm/study/modes/*.yaml`, shipped
with the package so `--quick` works from an installed hanlm). This module imports no
torch, transformers or numpy: `hanlm study --help` builds its flags from it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hanlm import config
from hanlm.config import opt
from hanlm.train.config import PRETRAIN_MLM_PROBABILITY

MODES = Path(__file__).with_name("modes")


def mode_file(name: str) -> Path:
    return MODES / f"{name}.yaml"


def _quick_fills_in(cls: type) -> type:
    """With `quick=True`, the settings the caller did not give (keyword arguments;
    `hanlm.config.build` passes exactly the keys of the YAML file and the flags) are the quick
    mode's: `--quick --seeds 1 2 3` runs three seeds although 1 2 3 is also the default."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, **given: Any) -> None:
        init(self, **given)
        if self.quick:
            mode = _quick_mode()
            for f in dataclasses.fields(self):
                if f.name not in given:
                    object.__setattr__(self, f.name, copy.deepcopy(getattr(mode, f.name)))

    cls.__init__ = __init__  # type: ignore[misc]
    return cls


@functools.cache
def _quick_mode() -> StudyConfig:
    path = mode_file("quick")
    return config.build(StudyConfig, {**config.read_yaml(path), "quick": False}, source=str(path))


# The default sizes: BERT-tiny, not mini: on 2 CPU cores tiny runs ~4x the tokens/s of mini,
# and in a pilot (docs/RESULTS.md) its MLM loss fell further in the same time. Trained on
# 128-token sequences alone, tiny does not leave the early MLM plateau within this budget;
# 32-token sequences first do (`short_len`, `hanlm.study.plan.pretrain_phases`). 10,000 steps:
# every step budget tried (4,000, 7,000) raised NSMC accuracy at 10,000 labels, and 10,000 still
# fits the 2-hour budget. The 50-minute cap per model keeps the whole study under 2 hours on a
# host 1.8x slower than the one that ran it in 92 minutes (where no model reached the cap).
@_quick_fills_in
@dataclass(frozen=True, kw_only=True)
class StudyConfig:
    quick: bool = opt(False, "the ~10-minute version: smaller slices, same code path (the "
                      "settings of hanlm/study/modes/quick.yaml under --config and the flags)")
    data: str | None = opt(None, "shared data folder (default: $HANLM_SHARED_DATA, else "
                           "../shared/data)")
    work_dir: str | None = opt(None, "stage cache (default: study-work/MODE, MODE = default "
                               "or quick)")
    results: str | None = opt(None, "results.json, plots and report.md (default: "
                              "WORK_DIR/results)")
    overwrite: bool = opt(False, "redo the stages of the work directory that were made with "
                          "other settings (without it they are refused)")
    preset: Literal["tiny", "mini", "small", "medium", "base"] = opt("tiny", "model size")
    target_chars: int = opt(10_000_000, "characters of each pretraining corpus (review, "
                            "general)", min=1000)
    vocab_size: int = opt(16000, "WordPiece vocabulary of each tokenizer", min=100)
    pretokenize: Literal["none", "kiwi"] = opt(
        "none", "morpheme pre-tokenization of both tokenizers (kiwi: every eojeol cut into "
        "Kiwi morphemes before WordPiece, in pretraining and fine-tuning alike)")
    # bert alone by default: each objective adds two pretraining runs as long as the default
    # study's (~33 minutes each on 2 cores), which its 2-hour budget does not hold. Steps are the
    # default budget: a time budget gives each run what the host's load leaves it.
    objectives: list[str] = opt(
        help="pretraining objectives, each pretrained on both corpora (--objectives bert mlm "
        "electra; bert,mlm,electra also works): bert = MLM + NSP, mlm = MLM alone, "
        "electra = replaced-token detection with a small generator", factory=lambda: ["bert"])
    pretrain_budget: Literal["steps", "minutes"] = opt(
        "steps", "what ends each pretraining run: --pretrain-steps (reproducible, independent "
        "of the host's load; --pretrain-minutes is then a safety cap), or --pretrain-minutes "
        "of wall-clock (equal time for every objective, the learning rate annealed over it; "
        "the steps reached depend on the host and its load)")
    pretrain_steps: int = opt(10000, "pretraining steps of each model", min=1)
    pretrain_minutes: float = opt(50.0, "safety cap on each pretraining run, or its budget with "
                                  "--pretrain-budget minutes, split between the phases "
                                  "(minutes)", min=0, exclusive_min=True)
    pretrain_lr: float = opt(2e-3, "pretraining peak learning rate", min=0, exclusive_min=True)
    short_len: int = opt(32, "phase 1 of pretraining on sequences of this many tokens, as many "
                         "tokens per step (0 = one phase at --max-len)", min=0)
    short_share: float = opt(0.5, "share of the pretraining steps in phase 1 (0-1; on an NSMC "
                              "validation split 0.8 scored 0.7 points below 0.5, 0.3 level with "
                              "it: docs/RESULTS.md)", min=0)
    pretrain_batch_size: int = opt(32, "pretraining sequences per step (of --max-len tokens)",
                                   min=1)
    pretrain_dropout: float = opt(0.0, "pretraining dropout (0: the short-budget choice of "
                                  "cramming; the models fine-tune with the same setting)", min=0)
    pretrain_mlm_probability: float = opt(
        PRETRAIN_MLM_PROBABILITY, "fraction of tokens to predict in pretraining (`hanlm "
        "pretrain`'s default; on an NSMC validation split, 3 seeds: 15% 83.1, 25% 84.0-84.2, "
        "35% 84.6-85.1, the last two over two pretraining draws: docs/RESULTS.md)", min=0,
        exclusive_min=True)
    max_len: int = opt(128, "tokens per sequence (pretraining and fine-tuning)", min=16)
    nsmc_train: int = opt(10000, "NSMC full-fraction training set, a fixed-seed subsample "
                          "(0 = all 150K)", min=0)
    nsmc_test: int = opt(5000, "NSMC test subsample every model is scored on (0 = all 50K)",
                         min=0)
    fractions: list[float] = opt(help="NSMC training fractions of the data-efficiency curve "
                                 "(1 is always added)", factory=lambda: [0.01, 0.1, 1.0])
    klue_split: str = opt("42:0.2", "SEED:FRACTION: KLUE dev sets split into train / held-out "
                          "(by premise / sentence)")
    klue_limit: int = opt(1500, "at most N examples of each KLUE split part (0 = all)", min=0)
    seeds: list[int] = opt(help="fine-tuning seeds", factory=lambda: [1, 2, 3])
    finetune_epochs: float = opt(2.0, "NSMC fine-tuning epochs", min=0, exclusive_min=True)
    klue_finetune_epochs: float = opt(10.0, "KLUE-NLI/NER fine-tuning epochs (their "
                                      "1,500-example splits need more passes than NSMC)",
                                      min=0, exclusive_min=True)
    finetune_min_steps: int = opt(30, "at least this many fine-tuning steps (small training "
                                  "fractions)", min=1)
    finetune_lr: float = opt(5e-4, "NSMC fine-tuning peak learning rate", min=0,
                             exclusive_min=True)
    klue_finetune_lr: float = opt(
        2e-3, "KLUE-NLI/NER fine-tuning peak learning rate (on a validation split of the KLUE "
        "training part, KLUE-NER scored 6-7 points higher at 2e-3 than at NSMC's 5e-4, and "
        "levelled off above: docs/RESULTS.md)", min=0, exclusive_min=True)
    finetune_batch_size: int = opt(32, "fine-tuning batch size", min=1)
    finetune_dropout: float | None = opt(
        None, "dropout while fine-tuning every model (default: the models' own, which is "
        "--pretrain-dropout; BERT's 0.1 scored no better on a validation split, docs/RESULTS.md)",
        min=0)
    # Off by default: it adds a pretraining as long as a review model's per objective, and its
    # fine-tuning: ~35 minutes on 2 cores with bert alone (10,000 steps at the quick run's 0.17 s
    # each, and 15 runs), past the default study's 2 hours.
    continued: bool = opt(False, "also continue each general model on the review corpus (its "
                          "own general vocabulary, the step budget of a review model), as "
                          "`hanlm pretrain --init-from` adapts a user's checkpoint: "
                          "domain-adaptive pretraining against review-from-scratch and general")
    continued_lr: float = opt(
        5e-4, "peak learning rate of the continued pretraining (lower than from scratch, as "
        "domain-adaptive pretraining is run, so the warm-up does not undo the general model)",
        min=0, exclusive_min=True)
    re_share: float = opt(0.1, "share of KLUE-RE sentences in the general corpus", min=0)
    seed: int = opt(0, "seed of corpus sampling, subsamples, pretraining and random init")
    full_nsmc_baseline: bool = opt(True, "also fit TF-IDF + LR on all 150K NSMC reviews and "
                                   "score all 50K test reviews (the 87.4% reference)")
    full_nsmc: bool = opt(False, "also fine-tune the review-pretrained model of each objective "
                          "and random init on all of NSMC (142,500 training reviews, 7,500 held "
                          "out for selection; 2 epochs, lr 5e-4) and compare them with TF-IDF + "
                          "LR on all 50,000 test reviews, paired (~4 min a run on 2 CPU cores)")
    full_nsmc_seeds: list[int] = opt(help="seeds of the full-NSMC runs",
                                     factory=lambda: [42, 2, 3])
    pilot: bool = opt(False, "pretrain the review model(s) only and score NSMC at 100% of the "
                      "labels on a validation split of other training reviews, not the test "
                      "reviews: for choosing a recipe (hanlm/study/pilot.py)")
    pilot_reviews: int = opt(5000, "size of --pilot's validation split", min=1)
    keep_models: bool = opt(False, "keep the fine-tuned models (default: metrics and "
                            "predictions only)")

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "default"
