"""What a study runs: its settings with the mode applied, the pretraining phases and the
fine-tuning runs, and the plan as the log shows it."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from hanlm import config
from hanlm.data.objective import OBJECTIVES, data_kind
from hanlm.errors import HanlmError
from hanlm.study.cache import keyed_since
from hanlm.study.config import StudyConfig
from hanlm.study.corpora import CORPORA
from hanlm.study.workdir import WorkDir

logger = logging.getLogger(__name__)

TASKS = ("nsmc", "klue-nli", "klue-ner")
# Steps that no time budget reaches (BERT-tiny does ~10 a second on 2 CPU cores): with
# --pretrain-budget minutes the time alone ends a run, and the schedule follows the time.
TIMED_MAX_STEPS = 10_000_000


def model_name(corpus: str, objective: str) -> str:
    """`review`, `review-mlm`, `review-electra`, ...: the MLM + NSP models keep the bare corpus
    name they had before the study compared objectives, so their work directories, cache
    records and reports stay valid and adding an objective reuses them."""
    return corpus if objective == "bert" else f"{corpus}-{objective}"


# Domain-adaptive pretraining (`--continued`): the general model of an objective, continued on
# the review text read with its own (general) vocabulary, as `hanlm data build --tokenizer
# MODEL_DIR` and `hanlm pretrain --init-from MODEL_DIR` continue a user's checkpoint. In the
# study it is a pretraining "corpus" of its own: the review text, the general vocabulary.
CONTINUED = "continued"


def corpus_text(corpus: str) -> str:
    """The corpus file a pretraining corpus reads."""
    return "review" if corpus == CONTINUED else corpus


def corpus_vocabulary(corpus: str) -> str:
    """The corpus whose tokenizer a pretraining corpus is read with."""
    return "general" if corpus == CONTINUED else corpus


def data_name(corpus: str, objective: str) -> str:
    """The data build an objective reads: NSP pairs (`review`) or packed sequences
    (`review-packed`, shared by mlm and electra)."""
    return corpus if data_kind(objective) == "pairs" else f"{corpus}-packed"


@dataclass(frozen=True)
class Pretrained:
    corpus: str
    objective: str

    @property
    def name(self) -> str:
        return model_name(self.corpus, self.objective)

    @property
    def data(self) -> str:
        return data_name(self.corpus, self.objective)

    @property
    def init_model(self) -> str | None:
        """The model a continued pretraining starts from: the general one of its objective."""
        return model_name("general", self.objective) if self.corpus == CONTINUED else None


def pretrained_models(cfg: StudyConfig) -> list[Pretrained]:
    """One pretraining per (objective, corpus), objectives in the order given; then, with
    --continued, the continued models."""
    return ([Pretrained(corpus, objective) for objective in cfg.objectives for corpus in CORPORA]
            + continued_models(cfg))


def continued_models(cfg: StudyConfig) -> list[Pretrained]:
    """With --continued, one per objective that `hanlm pretrain --init-from` can continue (a
    BERT: not ELECTRA, whose discriminator and generator it does not load)."""
    if not cfg.continued:
        return []
    return [Pretrained(CONTINUED, o) for o in cfg.objectives if o != "electra"]


def model_names(cfg: StudyConfig) -> list[str]:
    """Every model fine-tuned: the pretrained ones, then random init (one BERT, whatever the
    objectives)."""
    return [p.name for p in pretrained_models(cfg)] + ["random"]


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
    objectives = list(dict.fromkeys(o.strip() for item in cfg.objectives
                                    for o in str(item).split(",") if o.strip()))
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown or not objectives:
        raise HanlmError(f"--objectives: {', '.join(unknown) or 'none given'}; choose from "
                         f"{', '.join(OBJECTIVES)}")
    cfg = dataclasses.replace(cfg, fractions=sorted(set(cfg.fractions) | {1.0}),
                              objectives=objectives)
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
    # With --pretrain-budget minutes: the wall-clock the phase trains for (then part of what
    # the run is); `steps` then only paces evaluation and checkpoints.
    budget_minutes: float | None = dataclasses.field(default=None, metadata=keyed_since(None))

    @property
    def max_steps(self) -> int:
        return self.steps if self.budget_minutes is None else TIMED_MAX_STEPS


def pretrain_phases(cfg: StudyConfig, objective: str = "bert") -> list[Phase]:
    """The pretraining of each model: one phase at max_len, or two with short sequences first.

    On 128-token sequences a small BERT stays for thousands of steps on the early MLM plateau
    (predicting masked tokens from their frequencies alone: docs/RESULTS.md); on 32-token
    sequences, with 4x the sequences per step so each step holds as many tokens, the same model
    starts to use the context within ~600 steps. Phase 2 continues from phase 1's model on
    max_len-token sequences so all positions are trained, as BERT's own two phases were
    (128 then 512 tokens). Both phases have the same peak lr, warm-up share and linear decay.

    ELECTRA runs one phase at max_len, with the whole step (or time) budget: `hanlm pretrain
    --init-from` continues a BERT only, so its second phase could not start from its first. As
    both phases hold the same tokens per step, it still sees as many tokens in as many steps.
    """
    if not cfg.short_len or cfg.short_len >= cfg.max_len or objective == "electra":
        return [_phase(cfg, "", cfg.max_len, cfg.pretrain_batch_size, cfg.pretrain_steps,
                       cfg.pretrain_minutes, None)]
    short_steps = min(cfg.pretrain_steps - 1, max(1, round(cfg.pretrain_steps * cfg.short_share)))
    share = short_steps / cfg.pretrain_steps
    short_batch = max(1, cfg.pretrain_batch_size * cfg.max_len // cfg.short_len)
    return [
        _phase(cfg, "-short", cfg.short_len, short_batch, short_steps,
               cfg.pretrain_minutes * share, None),
        _phase(cfg, "", cfg.max_len, cfg.pretrain_batch_size, cfg.pretrain_steps - short_steps,
               cfg.pretrain_minutes * (1 - share), "-short"),
    ]


def _phase(cfg: StudyConfig, suffix: str, max_len: int, batch: int, steps: int, minutes: float,
           init_from: str | None) -> Phase:
    """A phase of `steps` steps and `minutes` minutes: with --pretrain-budget minutes, the
    minutes are its budget; otherwise a safety cap."""
    timed = cfg.pretrain_budget == "minutes"
    return Phase(suffix, max_len, batch, steps, minutes, init_from,
                 budget_minutes=round(minutes, 6) if timed else None)


def model_phases(cfg: StudyConfig, model: Pretrained) -> list[Phase]:
    """A model's pretraining phases. A continued model has one at max_len with the whole budget
    of a review model (its tokens: both phases hold as many per step): the general model it
    starts from has left the early plateau the short phase is for."""
    if model.corpus != CONTINUED:
        return pretrain_phases(cfg, model.objective)
    return [_phase(cfg, "", cfg.max_len, cfg.pretrain_batch_size, cfg.pretrain_steps,
                   cfg.pretrain_minutes, None)]


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
    specs, models = [], model_names(cfg)
    for seed in cfg.seeds:
        for model in models:
            specs += [RunSpec(model, task, 1.0, seed) for task in TASKS]
        for fraction in cfg.fractions:
            if fraction < 1.0:
                specs += [RunSpec(model, "nsmc", fraction, seed) for model in models]
    return specs


def full_nsmc_models(cfg: StudyConfig) -> list[str]:
    """The models fine-tuned on all of NSMC: each objective's review model and random init."""
    return [model_name("review", objective) for objective in cfg.objectives] + ["random"]


def full_nsmc_specs(cfg: StudyConfig) -> list[RunSpec]:
    return [RunSpec(model, "nsmc-full", 1.0, seed) for seed in cfg.full_nsmc_seeds
            for model in full_nsmc_models(cfg)] if cfg.full_nsmc else []


def log_plan(study: Study) -> None:
    cfg = study.cfg
    timed = cfg.pretrain_budget == "minutes"
    phases = " then ".join(
        (f"{p.budget_minutes:g} min" if timed else f"{p.steps} steps")
        + f" x {p.batch_size} sequences of {p.max_len} tokens" for p in pretrain_phases(cfg))
    if "electra" in cfg.objectives and len(pretrain_phases(cfg)) > 1:
        phases += f" (electra: one phase of {cfg.max_len}-token sequences)"
    budget = (f"{cfg.pretrain_minutes:g} min of wall-clock each (steps: as many as fit)" if timed
              else f"cap {cfg.pretrain_minutes:g} min each")
    models = model_names(cfg)
    continued = continued_models(cfg)
    full = full_nsmc_specs(cfg)
    dropout = cfg.pretrain_dropout if cfg.finetune_dropout is None else cfg.finetune_dropout
    lines = [
        f"study plan ({cfg.mode}): work dir {study.work.root}, results {study.results}",
        f"  data: {study.data}",
        f"  corpora: review vs general, {cfg.target_chars:,} characters each",
        f"  tokenizers: WordPiece, vocabulary {cfg.vocab_size:,} each"
        + (", words cut into kiwi morphemes first" if cfg.pretokenize == "kiwi" else ""),
        f"  pretraining: objectives {', '.join(cfg.objectives)} x (review, general) = "
        f"{len(models) - 1 - len(continued)} models; {cfg.preset}, {phases}, lr "
        f"{cfg.pretrain_lr:g}, dropout {cfg.pretrain_dropout:g}, {budget}",
        f"  fine-tuning: {len(run_specs(cfg))} runs = {len(models)} models "
        f"({', '.join(models)}) x ({len(TASKS)} tasks"
        f" + {len(cfg.fractions) - 1} NSMC fractions) x {len(cfg.seeds)} seed(s); "
        f"{cfg.finetune_epochs:g} epochs NSMC / {cfg.klue_finetune_epochs:g} KLUE (>= "
        f"{cfg.finetune_min_steps} steps), lr {cfg.finetune_lr:g} NSMC / "
        f"{cfg.klue_finetune_lr:g} KLUE, dropout {dropout:g}",
        f"  NSMC: '100%' = {cfg.nsmc_train or 150000:,} training reviews (fixed-seed "
        f"subsample), scored on {cfg.nsmc_test or 50000:,} test reviews; fractions "
        f"{', '.join(f'{f:g}' for f in cfg.fractions)}",
        f"  KLUE: dev sets split {cfg.klue_split} (seed:held-out fraction), limit "
        f"{cfg.klue_limit or 'none'}",
        "  baselines: TF-IDF + logistic regression on the same examples"
        + ("; and on all NSMC files" if cfg.full_nsmc_baseline or full else ""),
    ]
    if continued:
        lines.insert(5, f"  continued: {', '.join(m.init_model or '' for m in continued)} "
                     f"continued on the review corpus with the general vocabulary, "
                     f"{cfg.pretrain_steps} steps x {cfg.pretrain_batch_size} sequences of "
                     f"{cfg.max_len} tokens, lr {cfg.continued_lr:g}"
                     + (" (electra: not continued, --init-from loads a BERT)"
                        if "electra" in cfg.objectives else ""))
    if full:
        lines.append(f"  full NSMC: {len(full)} runs = {', '.join(full_nsmc_models(cfg))} x "
                     f"seeds {', '.join(map(str, cfg.full_nsmc_seeds))} on all training "
                     "reviews, paired against TF-IDF + LR on all 50,000 test reviews")
    logger.info("\n".join(lines))
