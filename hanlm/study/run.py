"""`hanlm study`: the domain study of GitHub issue #7, one command, resumable.

Stages, each cached in the work directory (a stage whose output is complete is skipped, so a
killed study resumes where it stopped):

1. corpora     two pretraining corpora of equal size (`hanlm.study.corpora`)
2. tokenizer   a WordPiece vocabulary per corpus
3. data        NSP/MLM shards per corpus
4. pretrain    the same preset and step budget for both corpora
5. export      Hugging Face directories; plus a random-initialised model of the same size
               (the review tokenizer, so random init reads NSMC with the in-domain vocabulary)
6. task files  fixed-seed NSMC subsamples: the "100%" training set, its 10% and 1% prefixes,
               and the test sample every model is scored on
7. finetune    every model x task x seed (NSMC at each training fraction) through
               `hanlm.tasks.run.finetune`; KLUE dev sets split at run time with `klue_split`
8. baselines   TF-IDF + logistic regression on the same examples (`hanlm.study.baselines`)
9. report      results.json, PNG plots, report.md (`hanlm.study.report`)

Fine-tuning evaluates once, after the last step: no model selection on the test data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hanlm import atomic
from hanlm.config import opt
from hanlm.errors import HanlmError
from hanlm.provenance import command_line
from hanlm.study.corpora import CORPORA, Sources, build_corpora

logger = logging.getLogger(__name__)

MODELS = ("review", "general", "random")
TASKS = ("nsmc", "klue-nli", "klue-ner")
NO_EVAL = 10**9  # eval_every: evaluate only after the last step


@dataclass(frozen=True)
class Budget:
    """The sizes of one study mode; every field can be overridden from the command line."""

    preset: str
    target_chars: int
    vocab_size: int
    pretrain_steps: int
    pretrain_minutes: float
    pretrain_lr: float
    short_len: int  # phase 1 sequence length (0 = one phase at max_len); see pretrain_phases
    short_share: float  # share of pretrain_steps spent in phase 1
    nsmc_train: int  # the "100%" training set: a fixed-seed subsample (0 = all 150K)
    nsmc_test: int  # the test sample every model is scored on (0 = all 50K)
    klue_limit: int  # at most this many examples of each KLUE split part (0 = all)
    seeds: tuple[int, ...]
    finetune_epochs: float
    klue_finetune_epochs: float
    finetune_min_steps: int
    finetune_lr: float


BUDGETS = {
    "quick": Budget(preset="tiny", target_chars=2_000_000, vocab_size=8000, pretrain_steps=1500,
                    pretrain_minutes=8.0, pretrain_lr=2e-3, short_len=32, short_share=0.75,
                    nsmc_train=3000, nsmc_test=1000,
                    klue_limit=1500, seeds=(1,), finetune_epochs=2.0, klue_finetune_epochs=4.0,
                    finetune_min_steps=20,
                    finetune_lr=3e-4),
    # BERT-tiny, not mini: on 2 CPU cores tiny runs ~4x the tokens/s of mini, and in a pilot
    # (docs/RESULTS.md) its MLM loss fell further in the same time. Trained on 128-token
    # sequences alone, tiny does not leave the early MLM plateau within this budget (context gain
    # 0.08 nats after 4,000 steps); 32-token sequences first do (pretrain_phases). 10,000 steps,
    # half of them on 128-token sequences: every step budget tried so far (4,000, 7,000) raised
    # NSMC accuracy at 10,000 labels, and 10,000 still fits the 2-hour budget (docs/RESULTS.md).
    # The 50-minute cap per model keeps the whole study under 2 hours on the 1.8x slower host of
    # 2026-12-04 (~115 minutes of pretraining at 25% masking there, plus ~18 for the rest); on
    # the host that ran the study in 78 minutes it is not reached (at most 34 minutes a model).
    "default": Budget(preset="tiny", target_chars=10_000_000, vocab_size=16000,
                      pretrain_steps=10000, pretrain_minutes=50.0, pretrain_lr=2e-3,
                      short_len=32, short_share=0.5,
                      nsmc_train=10000, nsmc_test=5000, klue_limit=1500, seeds=(1, 2, 3),
                      finetune_epochs=2.0, klue_finetune_epochs=10.0, finetune_min_steps=30,
                      finetune_lr=5e-4),
}


@dataclass
class StudyConfig:
    quick: bool = opt(False, "the ~20-minute version: smaller slices, same code path")
    data: str | None = opt(None, "shared data folder (default: $HANLM_SHARED_DATA, else "
                           "../shared/data)")
    work_dir: str | None = opt(None, "stage cache (default: study-work/MODE)")
    results: str | None = opt(None, "results.json, plots and report.md (default: "
                              "docs/results/MODE)")
    overwrite: bool = opt(False, "discard a work directory that holds a study with another plan")
    preset: Literal["tiny", "mini", "small", "medium", "base"] | None = opt(
        None, "model size (default: tiny)")
    target_chars: int | None = opt(None, "characters of each pretraining corpus", min=1000)
    vocab_size: int | None = opt(None, "WordPiece vocabulary of each tokenizer", min=100)
    pretrain_steps: int | None = opt(None, "pretraining steps of each model", min=1)
    pretrain_minutes: float | None = opt(None, "safety cap on each pretraining run (minutes)",
                                         min=0, exclusive_min=True)
    pretrain_lr: float | None = opt(None, "pretraining peak learning rate", min=0,
                                    exclusive_min=True)
    short_len: int | None = opt(None, "phase 1 of pretraining on sequences of this many tokens, "
                                "as many tokens per step (0 = one phase at --max-len)", min=0)
    short_share: float | None = opt(None, "share of the pretraining steps in phase 1 (0-1)",
                                    min=0)
    pretrain_batch_size: int = opt(32, "pretraining sequences per step (of --max-len tokens)",
                                   min=1)
    pretrain_dropout: float = opt(0.0, "pretraining dropout (0: the short-budget choice of "
                                  "cramming; the models fine-tune with the same setting)", min=0)
    pretrain_mlm_probability: float = opt(
        0.25, "fraction of tokens to predict in pretraining (BERT's 0.15 scored 0.9 points lower "
        "on an NSMC validation split in a pilot: docs/RESULTS.md)",
        min=0, exclusive_min=True)
    max_len: int = opt(128, "tokens per sequence (pretraining and fine-tuning)", min=16)
    nsmc_train: int | None = opt(None, "NSMC full-fraction training subsample (0 = all 150K)", min=0)
    nsmc_test: int | None = opt(None, "NSMC test subsample every model is scored on (0 = all)",
                                min=0)
    fractions: list[float] = opt(help="NSMC training fractions of the data-efficiency curve",
                                 factory=lambda: [0.01, 0.1, 1.0])
    klue_split: str = opt("42:0.2", "SEED:FRACTION: KLUE dev sets split into train / held-out")
    klue_limit: int | None = opt(None, "at most N examples of each KLUE split part (0 = all)",
                                 min=0)
    seeds: list[int] | None = opt(None, "fine-tuning seeds (default: 1 quick, 1 2 3 default)")
    finetune_epochs: float | None = opt(None, "NSMC fine-tuning epochs", min=0, exclusive_min=True)
    klue_finetune_epochs: float | None = opt(None, "KLUE-NLI/NER fine-tuning epochs (their "
                                             "1,500-example splits need more passes than NSMC)",
                                             min=0, exclusive_min=True)
    finetune_min_steps: int | None = opt(None, "at least this many fine-tuning steps (small "
                                         "training fractions)", min=1)
    finetune_lr: float | None = opt(None, "fine-tuning peak learning rate", min=0,
                                    exclusive_min=True)
    finetune_batch_size: int = opt(32, "fine-tuning batch size", min=1)
    finetune_dropout: float | None = opt(
        None, "dropout while fine-tuning every model (default: the models' own, which is "
        "--pretrain-dropout; BERT's 0.1 scored no better on a validation split, docs/RESULTS.md)",
        min=0)
    re_share: float = opt(0.1, "share of KLUE-RE sentences in the general corpus", min=0)
    seed: int = opt(0, "seed of corpus sampling, subsamples, pretraining and random init")
    full_nsmc_baseline: bool = opt(True, "also fit TF-IDF + LR on all 150K NSMC reviews and "
                                   "score all 50K test reviews (the 87.4% reference)")
    keep_models: bool = opt(False, "keep the fine-tuned models (default: metrics and "
                            "predictions only)")


@dataclass(frozen=True)
class Plan(Budget):
    """A StudyConfig with every default resolved: the mode's Budget (overridden where the command
    line says so) plus the settings all modes share. What runs, and what the cache depends on."""

    mode: str
    data: str
    work_dir: str
    results: str
    pretrain_batch_size: int
    pretrain_dropout: float
    pretrain_mlm_probability: float
    max_len: int
    fractions: tuple[float, ...]
    klue_split: str
    finetune_batch_size: int
    finetune_dropout: float | None
    re_share: float
    seed: int
    full_nsmc_baseline: bool
    keep_models: bool

    @property
    def work(self) -> Path:
        return Path(self.work_dir)


def default_data_dir() -> str:
    return os.environ.get("HANLM_SHARED_DATA") or str(Path("..") / "shared" / "data")


def resolve(cfg: StudyConfig) -> Plan:
    mode = "quick" if cfg.quick else "default"
    budget = BUDGETS[mode]
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Budget):
        given = getattr(cfg, f.name)
        values[f.name] = getattr(budget, f.name) if given is None else given
    if any(not 0 < f <= 1 for f in cfg.fractions):
        raise HanlmError("--fractions must lie in (0, 1]")
    if not 0 <= values["short_share"] <= 1:
        raise HanlmError("--short-share must lie in [0, 1]")
    return Plan(
        mode=mode, data=cfg.data or default_data_dir(),
        work_dir=cfg.work_dir or str(Path("study-work") / mode),
        results=cfg.results or str(Path("docs") / "results" / mode),
        pretrain_batch_size=cfg.pretrain_batch_size, pretrain_dropout=cfg.pretrain_dropout,
        pretrain_mlm_probability=cfg.pretrain_mlm_probability, max_len=cfg.max_len,
        fractions=tuple(sorted(set(cfg.fractions) | {1.0})), klue_split=cfg.klue_split,
        finetune_batch_size=cfg.finetune_batch_size, finetune_dropout=cfg.finetune_dropout,
        re_share=cfg.re_share, seed=cfg.seed,
        full_nsmc_baseline=cfg.full_nsmc_baseline, keep_models=cfg.keep_models,
        **{**values, "seeds": tuple(values["seeds"])},
    )


# Fields that change no cached output: a work directory is reused as it is when only these
# differ. The fine-tuning settings are among them because each run checks its own settings
# (`finetune_run`) and is redone when they changed.
_NOT_CACHED = {"results", "pretrain_minutes", "seeds", "full_nsmc_baseline", "keep_models",
               "work_dir", "finetune_epochs", "klue_finetune_epochs", "finetune_min_steps",
               "finetune_lr", "finetune_batch_size", "finetune_dropout"}
# Fields that leave the corpora, tokenizers and pretrained models valid: a change redoes only the
# task files, fine-tuning runs and baselines (hours of pretraining are kept).
_TASK_STAGES = ("nsmc", "finetune", "baselines")
_TASK_FIELDS = {"nsmc_train", "nsmc_test", "fractions", "klue_split", "klue_limit"}
# Plan fields added after studies were run, with the value the code before them used: a work
# directory whose plan.json lacks one was made with that value.
_ADDED_LATER = {"pretrain_mlm_probability": 0.15}


def check_work_dir(plan: Plan, overwrite: bool) -> dict[str, str]:
    """Refuse to mix two plans in one work directory (their caches would be stale).

    Returns the fingerprint of the hanlm source that made the work directory and of the source
    running now: cached stages made by other code are reused (a code edit must not throw away
    an hour of pretraining) but said so, in the log and in results.json.
    """
    path = plan.work / "plan.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        new = _jsonable(dataclasses.asdict(plan))
        changed = sorted(k for k in new if k not in _NOT_CACHED
                         and old.get(k, _ADDED_LATER.get(k)) != new[k])
        if changed and not overwrite:
            raise HanlmError(f"the work directory holds a study with another plan (differs in "
                             f"{', '.join(changed)}); pass --overwrite to discard it or choose "
                             f"another --work-dir", path=str(plan.work))
        if changed and set(changed) <= _TASK_FIELDS:
            logger.info("plan changed in %s: redoing the task files, fine-tuning and baselines; "
                        "keeping the pretrained models", ", ".join(changed))
            for stage in _TASK_STAGES:
                shutil.rmtree(plan.work / stage, ignore_errors=True)
        elif changed:
            shutil.rmtree(plan.work)
    plan.work.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(_jsonable(dataclasses.asdict(plan)), indent=2))
    return _source_record(plan.work / "source.sha256")


def source_fingerprint() -> str:
    """sha256 of hanlm's own Python files (their paths and bytes)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*.py")):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def _source_record(path: Path) -> dict[str, str]:
    now = source_fingerprint()
    if not path.is_file():
        atomic.write_text(path, now)
    made_by = path.read_text(encoding="utf-8").strip()
    if made_by != now:
        logger.warning("%s was made by other hanlm code (source sha256 %s, now %s): its cached "
                       "stages are reused as they are; delete it or choose another --work-dir to "
                       "redo them with this code", path.parent, made_by[:12], now[:12])
    return {"work_dir_made_by": made_by, "this_invocation": now}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


# ------------------------------------------------------------------------------ timing


class Timings:
    """Seconds each stage took when it was computed, kept across resumed invocations."""

    def __init__(self, path: Path):
        self.path = path
        self.seconds: dict[str, float] = (json.loads(path.read_text(encoding="utf-8"))
                                          if path.is_file() else {})

    def record(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = round(seconds, 1)
        atomic.write_text(self.path, json.dumps(self.seconds, indent=2))


def cached_stage(timings: Timings, name: str, done: bool, fn, *args) -> Any:
    """Run `fn(*args)` unless its output is complete; log and time it."""
    if done:
        logger.info("[%s] cached", name)
        return fn(*args, cached=True)
    logger.info("[%s] running", name)
    start = time.perf_counter()
    result = fn(*args, cached=False)
    timings.record(name, time.perf_counter() - start)
    logger.info("[%s] done in %.0f s", name, time.perf_counter() - start)
    return result


# ------------------------------------------------------------------------------ stages 1-5


def corpora_stage(plan: Plan, sources: Sources, *, cached: bool) -> dict:
    out = plan.work / "corpora"
    if not cached:
        build_corpora(sources, out, plan.target_chars, seed=plan.seed, re_share=plan.re_share)
    return json.loads((out / "corpora.json").read_text(encoding="utf-8"))


def tokenizer_stage(plan: Plan, name: str, *, cached: bool) -> Path:
    from hanlm.text import CorpusConfig
    from hanlm.tokenizer import TokenizerTrainConfig, train_tokenizer

    out = plan.work / f"tokenizer-{name}"
    if not cached:
        train_tokenizer(TokenizerTrainConfig(
            corpus=[str(plan.work / "corpora" / f"{name}.txt")], out=str(out),
            vocab_size=plan.vocab_size, overwrite=True, reader=CorpusConfig(format="docs")))
    return out


@dataclass(frozen=True)
class Phase:
    """One pretraining run of a corpus: its data, run and export directories and its size."""

    suffix: str  # "-short" for phase 1, "" for the phase whose export is fine-tuned
    max_len: int
    batch_size: int
    steps: int
    minutes: float
    init_from: str | None  # the export of the phase before, if any


def pretrain_phases(plan: Plan) -> list[Phase]:
    """The pretraining of each corpus: one phase at max_len, or two with short sequences first.

    On 128-token sequences a small BERT stays for thousands of steps on the early MLM plateau
    (predicting masked tokens from their frequencies alone: docs/RESULTS.md); on 32-token
    sequences, with 4x the sequences per step so each step holds as many tokens, the same model
    starts to use the context within ~600 steps. Phase 2 continues from phase 1's model on
    max_len-token sequences so all positions are trained, as BERT's own two phases were
    (128 then 512 tokens). Both phases have the same peak lr, warm-up share and linear decay.
    """
    if not plan.short_len or plan.short_len >= plan.max_len:
        return [Phase("", plan.max_len, plan.pretrain_batch_size, plan.pretrain_steps,
                      plan.pretrain_minutes, None)]
    short_steps = min(plan.pretrain_steps - 1, max(1, round(plan.pretrain_steps * plan.short_share)))
    share = short_steps / plan.pretrain_steps
    short_batch = max(1, plan.pretrain_batch_size * plan.max_len // plan.short_len)
    return [
        Phase("-short", plan.short_len, short_batch, short_steps, plan.pretrain_minutes * share,
              None),
        Phase("", plan.max_len, plan.pretrain_batch_size, plan.pretrain_steps - short_steps,
              plan.pretrain_minutes * (1 - share), "-short"),
    ]


def data_stage(plan: Plan, name: str, phase: Phase, *, cached: bool) -> Path:
    from hanlm.data.build import DataBuildConfig, build_dataset
    from hanlm.text import CorpusConfig

    out = plan.work / f"data-{name}{phase.suffix}"
    if not cached:
        build_dataset(DataBuildConfig(
            corpus=[str(plan.work / "corpora" / f"{name}.txt")],
            tokenizer=str(plan.work / f"tokenizer-{name}"), out=str(out), max_len=phase.max_len,
            seed=plan.seed, workers=min(2, os.cpu_count() or 1), chunk_chars=1_000_000,
            resume=out.exists(), reader=CorpusConfig(format="docs")))
    return out


def pretrain_stage(plan: Plan, name: str, phase: Phase, *, cached: bool) -> Path:
    from hanlm.data.masking import MaskingConfig
    from hanlm.train.optim import OptimConfig
    from hanlm.train.pretrain import PretrainConfig, pretrain

    out = plan.work / f"pretrain-{name}{phase.suffix}"
    if not cached:
        init_from = (str(plan.work / f"model-{name}{phase.init_from}")
                     if phase.init_from is not None else None)
        pretrain(PretrainConfig(
            data=str(plan.work / f"data-{name}{phase.suffix}"), out=str(out), preset=plan.preset,  # type: ignore[arg-type]
            max_steps=phase.steps, max_minutes=phase.minutes, init_from=init_from,
            batch_size=phase.batch_size, dropout=plan.pretrain_dropout,
            export_dropout=plan.pretrain_dropout, seed=plan.seed,
            log_every=10,
            eval_every=max(50, phase.steps // 8), save_every=max(100, phase.steps // 4),
            keep_checkpoints=1, tensorboard=False, resume=(out / "run.json").is_file(),
            optim=OptimConfig(lr=plan.pretrain_lr),
            masking=MaskingConfig(mlm_probability=plan.pretrain_mlm_probability)))
    return out


def export_stage(plan: Plan, name: str, phase: Phase, *, cached: bool) -> Path:
    from hanlm.export import ExportConfig, export_model

    out = plan.work / f"model-{name}{phase.suffix}"
    if not cached:
        export_model(ExportConfig(checkpoint=str(plan.work / f"pretrain-{name}{phase.suffix}"),
                                  out=str(out), name=f"hanlm-study-{name}-{plan.preset}",
                                  overwrite=True))
    return out


def random_stage(plan: Plan, *, cached: bool) -> Path:
    """A never-trained BERT of the same configuration, with the review tokenizer."""
    import torch
    from transformers import BertConfig, BertForPreTraining

    from hanlm.tokenizer import format as tokenizer_files

    reference, out = plan.work / "model-review", plan.work / "model-random"
    if not cached:
        torch.manual_seed(plan.seed)
        model = BertForPreTraining(BertConfig.from_pretrained(reference))
        with atomic.directory(out) as tmp:
            model.save_pretrained(tmp)
            tokenizer_files.copy_files(reference, tmp)
    return out


# ------------------------------------------------------------------------------ stage 6


def fraction_name(fraction: float) -> str:
    return f"{fraction * 100:g}pct"


def _table_rows(path: Path) -> tuple[str, list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0], [line for line in lines[1:] if line.strip()]


def _sample(rows: list[str], n: int, seed: int) -> list[str]:
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in (order[:n] if n else order)]


def task_files_stage(plan: Plan, sources: Sources, *, cached: bool) -> dict[str, Path]:
    """NSMC files in the original format: nested training fractions and the test sample."""
    out = plan.work / "nsmc"
    files = {fraction_name(f): out / f"train-{fraction_name(f)}.txt" for f in plan.fractions}
    files["test"] = out / "test.txt"
    if not cached:
        out.mkdir(parents=True, exist_ok=True)
        header, rows = _table_rows(sources.nsmc_train)
        train = _sample(rows, plan.nsmc_train, plan.seed)
        for f in plan.fractions:
            part = train[: max(1, round(f * len(train)))]
            atomic.write_text(files[fraction_name(f)], "\n".join([header, *part]) + "\n")
        header, rows = _table_rows(sources.nsmc_test)
        atomic.write_text(files["test"], "\n".join([header, *_sample(rows, plan.nsmc_test,
                                                                     plan.seed)]) + "\n")
    return files


# ------------------------------------------------------------------------------ stage 7


@dataclass(frozen=True)
class RunSpec:
    model: str
    task: str
    fraction: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.model}/{self.task}/{fraction_name(self.fraction)}/seed-{self.seed}"


def run_specs(plan: Plan) -> list[RunSpec]:
    """Seeds outermost, so an interrupted study has every table cell before more seeds."""
    specs = []
    for seed in plan.seeds:
        for model in MODELS:
            specs += [RunSpec(model, task, 1.0, seed) for task in TASKS]
        for fraction in plan.fractions:
            if fraction < 1.0:
                specs += [RunSpec(model, "nsmc", fraction, seed) for model in MODELS]
    return specs


def _task_inputs(plan: Plan, sources: Sources, files: dict[str, Path], spec: RunSpec
                 ) -> dict[str, Any]:
    if spec.task == "nsmc":
        return {"train": files[fraction_name(spec.fraction)], "dev": files["test"], "split": None,
                "limit": None}
    path = sources.nli_dev if spec.task == "klue-nli" else sources.ner_dev
    return {"train": path, "dev": None, "split": plan.klue_split, "limit": plan.klue_limit or None}


def load_split(task_name: str, inputs: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """(train, test) examples exactly as `finetune` sees them (same reader, split and limit)."""
    from hanlm.tasks.base import ReadOptions
    from hanlm.tasks.registry import get_task
    from hanlm.tasks.split import parse_split, split_examples

    task = get_task(task_name)
    examples = task.read(Path(inputs["train"]), ReadOptions())
    if inputs["split"]:
        seed, fraction = parse_split(inputs["split"])
        train, test = split_examples(examples, task.group_of, seed, fraction)
    else:
        train, test = examples, task.read(Path(inputs["dev"]), ReadOptions())
    limit = inputs["limit"]
    return (train[:limit], test[:limit]) if limit else (train, test)


def finetune_steps(plan: Plan, task: str, n_train: int) -> int:
    per_epoch = math.ceil(n_train / plan.finetune_batch_size)
    epochs = plan.finetune_epochs if task == "nsmc" else plan.klue_finetune_epochs
    return max(plan.finetune_min_steps, math.ceil(epochs * per_epoch))


def finetune_run(plan: Plan, sources: Sources, model_dir: Path, files: dict[str, Path],
                 spec: RunSpec) -> tuple[dict[str, Any], bool]:
    """One fine-tuning run through the tasks package: (its metrics.json, whether it was cached).

    A finished run is reused only when it was made with exactly these settings (the config.yaml
    `finetune` wrote next to its metrics) from exactly these inputs (`inputs.json`: digests of
    the model's weights and of the task files), so changing a fine-tuning setting redoes the
    runs it touches and nothing else, and a model pretrained again is never scored by the runs
    of its predecessor.
    """
    from hanlm.tasks.loop import FinetuneOptimConfig, TrainConfig
    from hanlm.tasks.run import DataOptions, FinetuneConfig, finetune

    out = plan.work / "finetune" / spec.name
    inputs = _task_inputs(plan, sources, files, spec)
    n_train = len(load_split(spec.task, inputs)[0])
    cfg = FinetuneConfig(
        task=spec.task, train=str(inputs["train"]), model=str(model_dir), out=str(out),
        dev=str(inputs["dev"]) if inputs["dev"] else None, dropout=plan.finetune_dropout,
        options=DataOptions(split_dev=inputs["split"], limit=inputs["limit"],
                            max_len=plan.max_len),
        loop=TrainConfig(max_steps=finetune_steps(plan, spec.task, n_train),
                         batch_size=plan.finetune_batch_size, eval_every=NO_EVAL,
                         keep_checkpoints=1, seed=spec.seed, progress=False,
                         optim=FinetuneOptimConfig(lr=plan.finetune_lr)))
    digests = input_digests(model_dir, inputs)
    cached = _finished_with(out, cfg) and _read_json(out / INPUTS_FILE) == digests
    if not cached:
        if out.exists():
            shutil.rmtree(out)  # killed midway, or made with other settings or inputs
        finetune(cfg)
        _prune_run(out, plan.keep_models)
        atomic.write_text(out / INPUTS_FILE, json.dumps(digests, indent=2))
    return json.loads((out / "metrics.json").read_text(encoding="utf-8")), cached


INPUTS_FILE = "inputs.json"


def input_digests(model_dir: Path, inputs: dict[str, Any]) -> dict[str, str]:
    """sha256 of what a fine-tuning run reads: the model's weights and its task files."""
    files = {"model": model_dir / "model.safetensors", "train": inputs["train"],
             "dev": inputs["dev"]}
    return {name: atomic.file_sha256(path) for name, path in files.items() if path}


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _finished_with(out: Path, cfg: Any) -> bool:
    import yaml

    from hanlm import config

    saved = out / "config.yaml"
    if not ((out / "metrics.json").is_file() and saved.is_file()):
        return False
    wanted = yaml.safe_load(yaml.safe_dump(config.to_dict(cfg), allow_unicode=True))
    return yaml.safe_load(saved.read_text(encoding="utf-8")) == wanted


def _prune_run(out: Path, keep_models: bool) -> None:
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    if not keep_models:
        shutil.rmtree(out / "model", ignore_errors=True)


def finetune_stage(plan: Plan, sources: Sources, models: dict[str, Path],
                   files: dict[str, Path], timings: Timings) -> list[dict[str, Any]]:
    specs = run_specs(plan)
    results = []
    for i, spec in enumerate(specs, 1):
        start = time.perf_counter()
        summary, cached = finetune_run(plan, sources, models[spec.model], files, spec)
        if not cached:
            timings.record(f"finetune/{spec.name}", time.perf_counter() - start)
        value = summary["dev"][summary["main_metric"]]
        logger.info("[finetune %d/%d] %s: %s %.2f%s", i, len(specs), spec.name,
                    summary["main_metric"], value, " (cached)" if cached else
                    f" ({summary['steps']} steps, {time.perf_counter() - start:.0f} s)")
        results.append({**dataclasses.asdict(spec), "metric": summary["main_metric"],
                        "value": value, "metrics": summary["dev"], "steps": summary["steps"],
                        "train_examples": summary["train_examples"],
                        "test_examples": summary["dev_examples"],
                        "seconds": summary["wall_seconds"]})
    return results


# ------------------------------------------------------------------------------ stage 8


def baseline_stage(plan: Plan, sources: Sources, files: dict[str, Path], timings: Timings
                   ) -> list[dict[str, Any]]:
    jobs = [("nsmc", f) for f in plan.fractions] + [("klue-nli", 1.0), ("klue-ner", 1.0)]
    results = [_baseline(plan, sources, files, task, f, timings) for task, f in jobs]
    if plan.full_nsmc_baseline:
        full = {"nsmc-full": {"train": sources.nsmc_train, "dev": sources.nsmc_test,
                              "split": None, "limit": None}}
        results.append(_baseline(plan, sources, files, "nsmc", 1.0, timings, full))
    return results


def _baseline(plan: Plan, sources: Sources, files: dict[str, Path], task_name: str,
              fraction: float, timings: Timings, full: dict | None = None) -> dict[str, Any]:
    from hanlm.study.baselines import run_baseline
    from hanlm.tasks.registry import get_task

    key = "nsmc-full" if full else f"{task_name}-{fraction_name(fraction)}"
    path = plan.work / "baselines" / f"{key}.json"
    if not path.is_file():
        spec = RunSpec("tfidf", task_name, fraction, 0)
        inputs = full[key] if full else _task_inputs(plan, sources, files, spec)
        start = time.perf_counter()
        train, test = load_split(task_name, inputs)
        task = get_task(task_name)
        metrics = run_baseline(task, train, test, seed=plan.seed)
        seconds = time.perf_counter() - start
        timings.record(f"baseline/{key}", seconds)
        result = {"model": "tfidf", "task": task_name, "fraction": fraction, "seed": 0,
                  "full_data": bool(full), "metric": task.main_metric,
                  "value": metrics[task.main_metric], "metrics": metrics,
                  "train_examples": len(train), "test_examples": len(test),
                  "seconds": round(seconds, 1)}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(result, indent=2))
    result = json.loads(path.read_text(encoding="utf-8"))
    logger.info("[baseline] %s: %s %.2f", key, result["metric"], result["value"])
    return result


# ------------------------------------------------------------------------------ the study


def log_plan(plan: Plan) -> None:
    n_runs = len(run_specs(plan))
    lines = [
        f"study plan ({plan.mode}): work dir {plan.work_dir}, results {plan.results}",
        f"  data: {plan.data}",
        f"  corpora: review vs general, {plan.target_chars:,} characters each",
        f"  tokenizers: WordPiece, vocabulary {plan.vocab_size:,} each",
        f"  pretraining: {plan.preset}, "
        + " then ".join(f"{p.steps} steps x {p.batch_size} sequences of {p.max_len} tokens"
                        for p in pretrain_phases(plan))
        + f", lr {plan.pretrain_lr:g}, dropout {plan.pretrain_dropout:g}, cap "
        f"{plan.pretrain_minutes:g} min each",
        f"  fine-tuning: {n_runs} runs = {len(MODELS)} models x ({len(TASKS)} tasks + "
        f"{len(plan.fractions) - 1} NSMC fractions) x {len(plan.seeds)} seed(s); "
        f"{plan.finetune_epochs:g} epochs NSMC / {plan.klue_finetune_epochs:g} KLUE (>= "
        f"{plan.finetune_min_steps} steps), lr "
        f"{plan.finetune_lr:g}, dropout "
        f"{plan.pretrain_dropout if plan.finetune_dropout is None else plan.finetune_dropout:g}",
        f"  NSMC: '100%' = {plan.nsmc_train or 150000:,} training reviews (fixed-seed "
        f"subsample), scored on {plan.nsmc_test or 50000:,} test reviews; fractions "
        f"{', '.join(f'{f:g}' for f in plan.fractions)}",
        f"  KLUE: dev sets split {plan.klue_split} (seed:held-out fraction), limit "
        f"{plan.klue_limit or 'none'}",
        "  baselines: TF-IDF + logistic regression on the same examples"
        + ("; and on all NSMC files" if plan.full_nsmc_baseline else ""),
    ]
    logger.info("\n".join(lines))


def run_study(cfg: StudyConfig) -> int:
    from hanlm.study import report

    started = time.perf_counter()
    plan = resolve(cfg)
    sources = Sources(Path(plan.data))
    sources.check()
    source = check_work_dir(plan, cfg.overwrite)
    log_plan(plan)
    timings = Timings(plan.work / "timings.json")
    work = plan.work

    corpora = cached_stage(timings, "corpora", (work / "corpora" / "corpora.json").is_file(),
                           corpora_stage, plan, sources)
    models: dict[str, Path] = {}
    for name in CORPORA:
        cached_stage(timings, f"tokenizer/{name}",
                     (work / f"tokenizer-{name}" / "hanlm_tokenizer.json").is_file(),
                     tokenizer_stage, plan, name)
        for phase in pretrain_phases(plan):
            key = f"{name}{phase.suffix}"
            cached_stage(timings, f"data/{key}", (work / f"data-{key}" / "meta.json").is_file(),
                         data_stage, plan, name, phase)
            cached_stage(timings, f"pretrain/{key}",
                         (work / f"pretrain-{key}" / "final_metrics.json").is_file(),
                         pretrain_stage, plan, name, phase)
            models[name] = cached_stage(timings, f"export/{key}",
                                        (work / f"model-{key}" / "config.json").is_file(),
                                        export_stage, plan, name, phase)
    models["random"] = cached_stage(timings, "random-init",
                                    (work / "model-random" / "config.json").is_file(),
                                    random_stage, plan)
    files = cached_stage(timings, "task files", (work / "nsmc" / "test.txt").is_file(),
                         task_files_stage, plan, sources)
    runs = finetune_stage(plan, sources, models, files, timings)
    baselines = baseline_stage(plan, sources, files, timings)

    results = report.collect(plan=dataclasses.asdict(plan), corpora=corpora,
                             pretraining={n: report.pretraining_summary(
                                 [work / f"pretrain-{n}{p.suffix}" for p in pretrain_phases(plan)])
                                 for n in CORPORA},
                             runs=runs, baselines=baselines, timings=timings.seconds, source=source,
                             command=command_line("hanlm.study.run.run_study (Python API)"),
                             wall_seconds=time.perf_counter() - started)
    written = report.write(results, Path(plan.results))
    print(report.summary_text(results))
    print(f"\nwritten: {', '.join(str(p) for p in written)}")
    return 0


