"""The study's stages up to fine-tuning, each a function of its own settings.

1. corpora     two pretraining corpora of equal size (`hanlm.study.corpora`)
2. tokenizer   a WordPiece vocabulary per corpus (shared by every objective)
3. data        shards per corpus and pretraining phase: NSP pairs for bert, packed sequences
               for mlm and electra (one build for both)
4. pretrain    per objective and corpus, the same preset and budget
5. export      Hugging Face directories; plus a random-initialised BERT of the same size
               (the review tokenizer, so random init reads NSMC with the in-domain vocabulary)
6. task files  fixed-seed NSMC subsamples: the "100%" training set, its smaller fractions as
               prefixes, and the test sample every model is scored on

A stage reads the config only through its settings dataclass, whose fields are therefore its
cache key (`hanlm.study.cache`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hanlm import atomic
from hanlm.data.objective import data_kind
from hanlm.study.cache import Stage, keyed_since
from hanlm.study.config import StudyConfig
from hanlm.study.corpora import CORPORA, Sources, build_corpora
from hanlm.study.plan import (
    Phase,
    Pretrained,
    Study,
    continued_models,
    corpus_text,
    corpus_vocabulary,
    fraction_name,
    model_name,
    model_phases,
    pretrain_phases,
    pretrained_models,
)
from hanlm.study.workdir import WorkDir

T = TypeVar("T")


def pick(cls: type[T], cfg: StudyConfig, **values: Any) -> T:
    """A settings dataclass: `values`, and the config's fields of the same names for the rest."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in values]  # type: ignore[arg-type]
    return cls(**values, **{name: getattr(cfg, name) for name in names})


@dataclass(frozen=True)
class CorporaSettings:
    data: str
    target_chars: int
    re_share: float
    seed: int


def corpora_stage(s: CorporaSettings, work: WorkDir, *, cached: bool) -> dict:
    if not cached:
        build_corpora(Sources(Path(s.data)), work.corpora, s.target_chars, seed=s.seed,
                      re_share=s.re_share)
    return json.loads(work.corpora_report.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class TokenizerSettings:
    corpus: str
    vocab_size: int
    pretokenize: str = dataclasses.field(default="none", metadata=keyed_since("none"))


def tokenizer_stage(s: TokenizerSettings, work: WorkDir, *, cached: bool) -> Path:
    from hanlm.text import CorpusConfig
    from hanlm.tokenizer import TokenizerTrainConfig, train_tokenizer

    out = work.tokenizer(s.corpus)
    if not cached:
        train_tokenizer(TokenizerTrainConfig(
            corpus=[str(work.corpus(s.corpus))], out=str(out), vocab_size=s.vocab_size,
            pretokenize=s.pretokenize, overwrite=True, reader=CorpusConfig(format="docs")))
    return out


@dataclass(frozen=True)
class DataSettings:
    corpus: str
    phase: str
    max_len: int  # the phase's
    seed: int
    kind: str = dataclasses.field(default="pairs", metadata=keyed_since("pairs"))  # or "packed"

    @property
    def name(self) -> str:
        return self.corpus if self.kind == "pairs" else f"{self.corpus}-packed"


def data_stage(s: DataSettings, work: WorkDir, *, cached: bool) -> Path:
    from hanlm.data.build import DataBuildConfig, build_dataset
    from hanlm.text import CorpusConfig

    out = work.data(s.name, s.phase)
    if not cached:
        build_dataset(DataBuildConfig(
            corpus=[str(work.corpus(corpus_text(s.corpus)))],
            tokenizer=str(work.tokenizer(corpus_vocabulary(s.corpus))),
            out=str(out), max_len=s.max_len, seed=s.seed, workers=min(2, os.cpu_count() or 1),
            chunk_chars=1_000_000, resume=out.exists(), reader=CorpusConfig(format="docs"),
            objective="bert" if s.kind == "pairs" else "mlm"))
    return out


@dataclass(frozen=True)
class PretrainSettings:
    corpus: str
    phase: Phase
    preset: str
    pretrain_lr: float
    pretrain_dropout: float
    pretrain_mlm_probability: float
    seed: int
    objective: str = dataclasses.field(default="bert", metadata=keyed_since("bert"))
    init_model: str | None = dataclasses.field(default=None, metadata=keyed_since(None))

    @property
    def model(self) -> Pretrained:
        return Pretrained(self.corpus, self.objective)


def pretrain_config(s: PretrainSettings, work: WorkDir) -> Any:
    """The `hanlm pretrain` config of one phase."""
    from hanlm.data.masking import MaskingConfig
    from hanlm.train.optim import OptimConfig
    from hanlm.train.pretrain import PretrainConfig

    name = s.model.name
    phase, out = s.phase, work.pretrain(name, s.phase.suffix)
    init_from = (str(work.model(s.init_model)) if s.init_model is not None else
                 str(work.model(name, phase.init_from)) if phase.init_from is not None else None)
    # Evaluations and checkpoints paced by the step budget, also when time ends the run.
    return PretrainConfig(
        data=str(work.data(s.model.data, phase.suffix)), out=str(out), preset=s.preset,  # type: ignore[arg-type]
        objective=s.objective,  # type: ignore[arg-type]
        max_steps=phase.max_steps, max_minutes=phase.minutes, init_from=init_from,
        # With the step budget the minutes are a safety stop only: a rate that followed the
        # time would differ between a busy and an idle host for the same steps.
        time_schedule=phase.budget_minutes is not None,
        batch_size=phase.batch_size, dropout=s.pretrain_dropout,
        export_dropout=s.pretrain_dropout, seed=s.seed, log_every=10,
        eval_every=max(50, phase.steps // 8), save_every=max(100, phase.steps // 4),
        keep_checkpoints=1, tensorboard=False, resume=(out / "run.json").is_file(),
        optim=OptimConfig(lr=s.pretrain_lr),
        masking=MaskingConfig(mlm_probability=s.pretrain_mlm_probability))


def pretrain_stage(s: PretrainSettings, work: WorkDir, *, cached: bool) -> Path:
    from hanlm.train.pretrain import pretrain

    if not cached:
        pretrain(pretrain_config(s, work))
    return work.pretrain(s.model.name, s.phase.suffix)


@dataclass(frozen=True)
class ExportSettings:
    corpus: str
    phase: str
    preset: str
    objective: str = dataclasses.field(default="bert", metadata=keyed_since("bert"))


def export_stage(s: ExportSettings, work: WorkDir, *, cached: bool) -> Path:
    from hanlm.export import ExportConfig, export_model

    name = model_name(s.corpus, s.objective)
    out = work.model(name, s.phase)
    if not cached:
        export_model(ExportConfig(checkpoint=str(work.pretrain(name, s.phase)), out=str(out),
                                  name=f"hanlm-study-{name}-{s.preset}", overwrite=True))
    return out


@dataclass(frozen=True)
class RandomSettings:
    seed: int
    # The review model whose configuration and tokenizer random init takes.
    reference: str = dataclasses.field(default="review", metadata=keyed_since("review"))


def _bert_config(reference: Path) -> Any:
    """The BERT configuration of a model directory; an ELECTRA discriminator's sizes (its
    embeddings are as wide as its hidden states in hanlm's presets) in a BertConfig."""
    from transformers import AutoConfig, BertConfig

    config = AutoConfig.from_pretrained(reference)
    if config.model_type == "bert":
        return BertConfig.from_pretrained(reference)
    sizes = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
             "intermediate_size", "max_position_embeddings", "type_vocab_size", "pad_token_id",
             "hidden_dropout_prob", "attention_probs_dropout_prob", "layer_norm_eps")
    return BertConfig(**{name: getattr(config, name) for name in sizes},
                      architectures=["BertForPreTraining"])


def random_stage(s: RandomSettings, work: WorkDir, *, cached: bool) -> Path:
    """A never-trained BERT of the review model's configuration, with the review tokenizer."""
    import torch
    from transformers import BertForPreTraining

    from hanlm.tokenizer import format as tokenizer_files

    reference, out = work.model(s.reference), work.model("random")
    if not cached:
        torch.manual_seed(s.seed)
        model = BertForPreTraining(_bert_config(reference))
        with atomic.directory(out) as tmp:
            model.save_pretrained(tmp)
            tokenizer_files.copy_files(reference, tmp)
    return out


@dataclass(frozen=True)
class TaskFileSettings:
    data: str
    nsmc_train: int
    nsmc_test: int
    fractions: tuple[float, ...]
    seed: int


def table_rows(path: Path) -> tuple[str, list[str]]:
    """(header, non-blank rows) of an NSMC-format file, rows as written."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0], [line for line in lines[1:] if line.strip()]


def _sample(rows: list[str], n: int, seed: int) -> list[str]:
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in (order[:n] if n else order)]


def task_files_stage(s: TaskFileSettings, work: WorkDir, *, cached: bool) -> dict[str, Path]:
    """NSMC files in the original format: nested training fractions and the test sample."""
    parts = [fraction_name(f) for f in s.fractions] + ["test"]
    files = {part: work.nsmc_file(part) for part in parts}
    if not cached:
        sources = Sources(Path(s.data))
        work.nsmc.mkdir(parents=True, exist_ok=True)
        header, rows = table_rows(sources.nsmc_train)
        train = _sample(rows, s.nsmc_train, s.seed)
        for f in s.fractions:
            part = train[: max(1, round(f * len(train)))]
            atomic.write_text(files[fraction_name(f)], "\n".join([header, *part]) + "\n")
        header, rows = table_rows(sources.nsmc_test)
        test = _sample(rows, s.nsmc_test, s.seed)
        atomic.write_text(files["test"], "\n".join([header, *test]) + "\n")
    return files


def _pretraining_stages(study: Study, corpus: str) -> list[Stage]:
    """Tokenizer, then per pretraining phase the data of each kind the objectives read, and
    each objective's pretraining and export, of one corpus."""
    cfg, work = study.cfg, study.work
    stages = [Stage(f"tokenizer/{corpus}", pick(TokenizerSettings, cfg, corpus=corpus),
                    tokenizer_stage, work.tokenizer(corpus) / "hanlm_tokenizer.json",
                    (work.tokenizer(corpus),), ("corpora",))]
    models = [m for m in pretrained_models(cfg) if m.corpus == corpus]
    for phase in pretrain_phases(cfg):
        # The models with a phase of this name (ELECTRA has only the last: `pretrain_phases`).
        phased = [(m, p) for m in models for p in pretrain_phases(cfg, m.objective)
                  if p.suffix == phase.suffix]
        for kind in dict.fromkeys(data_kind(m.objective) for m, _ in phased):
            data = pick(DataSettings, cfg, corpus=corpus, phase=phase.suffix,
                        max_len=phase.max_len, kind=kind)
            stages.append(Stage(f"data/{data.name}{phase.suffix}", data, data_stage,
                                work.data(data.name, phase.suffix) / "meta.json",
                                (work.data(data.name, phase.suffix),), (f"tokenizer/{corpus}",)))
        for m, own in phased:
            key = f"{m.name}{own.suffix}"
            before = () if own.init_from is None else (f"export/{m.name}{own.init_from}",)
            stages += [
                Stage(f"pretrain/{key}", pick(PretrainSettings, cfg, corpus=corpus, phase=own,
                                              objective=m.objective, init_model=None),
                      pretrain_stage, work.pretrain(m.name, own.suffix) / "final_metrics.json",
                      (work.pretrain(m.name, own.suffix),),
                      (f"data/{m.data}{own.suffix}", *before)),
                Stage(f"export/{key}", pick(ExportSettings, cfg, corpus=corpus,
                                            phase=own.suffix, objective=m.objective),
                      export_stage, work.model(m.name, own.suffix) / "config.json",
                      (work.model(m.name, own.suffix),), (f"pretrain/{key}",)),
            ]
    return stages


def _continued_stages(study: Study) -> list[Stage]:
    """Per continued model: the review text built with the general vocabulary (one build per
    data kind), the pretraining from the general model's export, and its export."""
    cfg, work, stages = study.cfg, study.work, []
    models = continued_models(cfg)
    for kind in dict.fromkeys(data_kind(m.objective) for m in models):
        data = pick(DataSettings, cfg, corpus=models[0].corpus, phase="", max_len=cfg.max_len,
                    kind=kind)
        stages.append(Stage(f"data/{data.name}", data, data_stage,
                            work.data(data.name, "") / "meta.json", (work.data(data.name, ""),),
                            (f"tokenizer/{corpus_vocabulary(data.corpus)}",)))
    for m in models:
        (phase,) = model_phases(cfg, m)
        stages += [
            Stage(f"pretrain/{m.name}", pick(PretrainSettings, cfg, corpus=m.corpus, phase=phase,
                                             objective=m.objective, init_model=m.init_model,
                                             pretrain_lr=cfg.continued_lr),
                  pretrain_stage, work.pretrain(m.name, "") / "final_metrics.json",
                  (work.pretrain(m.name, ""),), (f"data/{m.data}", f"export/{m.init_model}")),
            Stage(f"export/{m.name}", pick(ExportSettings, cfg, corpus=m.corpus, phase="",
                                           objective=m.objective),
                  export_stage, work.model(m.name) / "config.json", (work.model(m.name),),
                  (f"pretrain/{m.name}",)),
        ]
    return stages


def random_reference(cfg: StudyConfig) -> str:
    """The review model random init copies its configuration from: a BERT's where the study
    pretrains one (bert, else mlm), else the ELECTRA discriminator's."""
    bert_family = [o for o in cfg.objectives if o != "electra"]
    return model_name("review", (bert_family or cfg.objectives)[0])


def stage_list(study: Study) -> list[Stage]:
    """Every cached stage in the order it runs (a stage after those it reads); with --pilot,
    only those the review models need (`hanlm.study.pilot`)."""
    cfg, work, data = study.cfg, study.work, str(study.data)
    stages = [Stage("corpora", pick(CorporaSettings, cfg, data=data), corpora_stage,
                    work.corpora_report, (work.corpora,))]
    for corpus in ("review",) if cfg.pilot else CORPORA:
        stages += _pretraining_stages(study, corpus)
    if not cfg.pilot:
        reference = random_reference(cfg)
        stages += _continued_stages(study) + [
            Stage("random-init", pick(RandomSettings, cfg, reference=reference), random_stage,
                  work.model("random") / "config.json", (work.model("random"),),
                  (f"export/{reference}",))]
    return stages + [
        Stage("task files", pick(TaskFileSettings, cfg, data=data,
                                 fractions=tuple(cfg.fractions)),
              task_files_stage, work.nsmc_file("test"), (work.nsmc,)),
    ]
