"""What a study runs: its settings with the mode applied, the pretraining phases and the
fine-tuning runs, and the plan as the log shows it."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from hanlm import config
from hanlm.errors import HanlmError
from hanlm.study.config import StudyConfig
from hanlm.study.workdir import WorkDir

logger = logging.getLogger(__name__)

MODELS = ("review", "general", "random")
TASKS = ("nsmc", "klue-nli", "klue-ner")


@dataclass(frozen=True)
class Study:
    """A StudyConfig resolved: the mode's settings applied, and where it reads and writes."""

    cfg: StudyConfig
    data: Path
    work: WorkDir
    results: Path

    def record(self) -> dict:
        """The settings as results.json keeps them (paths resolved)."""
        return {"mode": self.cfg.mode, **config.to_dict(self.cfg), "data": str(self.data),
                "work_dir": str(self.work.root), "results": str(self.results)}


def default_data_dir() -> str:
    return os.environ.get("HANLM_SHARED_DATA") or str(Path("..") / "shared" / "data")


def resolve(cfg: StudyConfig) -> Study:
    if any(not 0 < f <= 1 for f in cfg.fractions):
        raise HanlmError("--fractions must lie in (0, 1]")
    if not 0 <= cfg.short_share <= 1:
        raise HanlmError("--short-share must lie in [0, 1]")
    cfg = dataclasses.replace(cfg, fractions=sorted(set(cfg.fractions) | {1.0}))
    work = WorkDir(Path(cfg.work_dir or Path("study-work") / cfg.mode))
    return Study(cfg=cfg, data=Path(cfg.data or default_data_dir()), work=work,
                 results=Path(cfg.results) if cfg.results else work.results)


@dataclass(frozen=True)
class Phase:
    """One pretraining run of a corpus: its size and which run it continues."""

    suffix: str  # "-short" for phase 1, "" for the phase whose export is fine-tuned
    max_len: int
    batch_size: int
    steps: int
    # A safety cap, not part of what a run is: a run it stopped is kept (the report says how
    # far it got), so it is left out of the stage's cache key (compare=False).
    minutes: float = dataclasses.field(compare=False)
    init_from: str | None  # the suffix of the phase before, if any


def pretrain_phases(cfg: StudyConfig) -> list[Phase]:
    """The pretraining of each corpus: one phase at max_len, or two with short sequences first.

    On 128-token sequences a small BERT stays for thousands of steps on the early MLM plateau
    (predicting masked tokens from their frequencies alone: docs/RESULTS.md); on 32-token
    sequences, with 4x the sequences per step so each step holds as many tokens, the same model
    starts to use the context within ~600 steps. Phase 2 continues from phase 1's model on
    max_len-token sequences so all positions are trained, as BERT's own two phases were
    (128 then 512 tokens). Both phases have the same peak lr, warm-up share and linear decay.
    """
    if not cfg.short_len or cfg.short_len >= cfg.max_len:
        return [Phase("", cfg.max_len, cfg.pretrain_batch_size, cfg.pretrain_steps,
                      cfg.pretrain_minutes, None)]
    short_steps = min(cfg.pretrain_steps - 1, max(1, round(cfg.pretrain_steps * cfg.short_share)))
    share = short_steps / cfg.pretrain_steps
    short_batch = max(1, cfg.pretrain_batch_size * cfg.max_len // cfg.short_len)
    return [
        Phase("-short", cfg.short_len, short_batch, short_steps, cfg.pretrain_minutes * share,
              None),
        Phase("", cfg.max_len, cfg.pretrain_batch_size, cfg.pretrain_steps - short_steps,
              cfg.pretrain_minutes * (1 - share), "-short"),
    ]


def fraction_name(fraction: float) -> str:
    return f"{fraction * 100:g}pct"


@dataclass(frozen=True)
class RunSpec:
    model: str
    task: str
    fraction: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.model}/{self.task}/{fraction_name(self.fraction)}/seed-{self.seed}"


def run_specs(cfg: StudyConfig) -> list[RunSpec]:
    """Seeds outermost, so an interrupted study has every table cell before more seeds."""
    specs = []
    for seed in cfg.seeds:
        for model in MODELS:
            specs += [RunSpec(model, task, 1.0, seed) for task in TASKS]
        for fraction in cfg.fractions:
            if fraction < 1.0:
                specs += [RunSpec(model, "nsmc", fraction, seed) for model in MODELS]
    return specs


def log_plan(study: Study) -> None:
    cfg = study.cfg
    phases = " then ".join(f"{p.steps} steps x {p.batch_size} sequences of {p.max_len} tokens"
                           for p in pretrain_phases(cfg))
    dropout = cfg.pretrain_dropout if cfg.finetune_dropout is None else cfg.finetune_dropout
    lines = [
        f"study plan ({cfg.mode}): work dir {study.work.root}, results {study.results}",
        f"  data: {study.data}",
        f"  corpora: review vs general, {cfg.target_chars:,} characters each",
        f"  tokenizers: WordPiece, vocabulary {cfg.vocab_size:,} each",
        f"  pretraining: {cfg.preset}, {phases}, lr {cfg.pretrain_lr:g}, dropout "
        f"{cfg.pretrain_dropout:g}, cap {cfg.pretrain_minutes:g} min each",
        f"  fine-tuning: {len(run_specs(cfg))} runs = {len(MODELS)} models x ({len(TASKS)} tasks"
        f" + {len(cfg.fractions) - 1} NSMC fractions) x {len(cfg.seeds)} seed(s); "
        f"{cfg.finetune_epochs:g} epochs NSMC / {cfg.klue_finetune_epochs:g} KLUE (>= "
        f"{cfg.finetune_min_steps} steps), lr {cfg.finetune_lr:g}, dropout {dropout:g}",
        f"  NSMC: '100%' = {cfg.nsmc_train or 150000:,} training reviews (fixed-seed "
        f"subsample), scored on {cfg.nsmc_test or 50000:,} test reviews; fractions "
        f"{', '.join(f'{f:g}' for f in cfg.fractions)}",
        f"  KLUE: dev sets split {cfg.klue_split} (seed:held-out fraction), limit "
        f"{cfg.klue_limit or 'none'}",
        "  baselines: TF-IDF + logistic regression on the same examples"
        + ("; and on all NSMC files" if cfg.full_nsmc_baseline else ""),
    ]
    logger.info("\n".join(lines))
