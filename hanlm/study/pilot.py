"""`hanlm study --pilot`: measure a recipe change without reading the test reviews.

The default study scores its models on NSMC test reviews, so its recipe (masking rate, steps,
corpus size, fine-tuning rate, ...) must be chosen elsewhere. A pilot pretrains the review model
of each objective exactly as the study would with the same flags (the study's own cached stages,
so a pilot work directory is also the start of a study), fine-tunes it on the study's NSMC
training set with the study's recipe, once per seed, and scores it on a validation split:
`--pilot-reviews` other NSMC training reviews, never the test file. The "Why the recipe is what
it is" table of docs/RESULTS.md records such pilots. For example, the masking rate at equal time:

    hanlm study --pilot --work-dir runs/pilot-25 --pretrain-mlm-probability 0.25 --pretrain-steps 12000
    hanlm study --pilot --work-dir runs/pilot-35
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any

from hanlm import atomic, config
from hanlm.errors import HanlmError
from hanlm.study import summary
from hanlm.study.config import StudyConfig
from hanlm.study.corpora import Sources
from hanlm.study.finetune import finetune_run
from hanlm.study.plan import RunSpec, Study, model_phases, pretrained_models, resolve
from hanlm.study.run import run_cached_stages
from hanlm.study.stages import table_rows

logger = logging.getLogger(__name__)

# The validation split's shuffle: fixed, so pilots of different recipes read the same reviews.
VALIDATION_SEED = 7
RESULTS_FILE = "pilot.json"


def validation_split(source: Path, train: Path, out: Path, n: int) -> Path:
    """`n` reviews of NSMC's training file (`source`) whose ids are not among those of the
    study's training set (`train`), drawn with VALIDATION_SEED, in the same format."""
    header, rows = table_rows(source)
    taken = {row.split("\t", 1)[0] for row in table_rows(train)[1]}
    rest = [row for row in rows if row.split("\t", 1)[0] not in taken]
    if len(rest) < n:
        raise HanlmError(f"--pilot-reviews {n}: only {len(rest)} training reviews are outside "
                         "the study's training set", path=str(source))
    random.Random(VALIDATION_SEED).shuffle(rest)
    atomic.write_text(out, "\n".join([header, *rest[:n]]) + "\n")
    return out


def _finetune(study: Study, name: str, model_dir: Path, inputs: dict[str, Any]) -> list[float]:
    """The study's NSMC recipe, once per seed; scored on the validation split."""
    scores = []
    for seed in study.cfg.seeds:
        start = time.perf_counter()
        spec = RunSpec(f"pilot-{name}", "nsmc", 1.0, seed)
        metrics, cached = finetune_run(study.cfg, study.work, model_dir, inputs, spec)
        scores.append(metrics["dev"][metrics["main_metric"]])
        logger.info("[pilot] %s seed %d: validation accuracy %.2f (%s)", name, seed, scores[-1],
                    "cached" if cached else f"{time.perf_counter() - start:.0f} s")
    return scores


def _model_record(study: Study, model: Any, scores: list[float]) -> dict[str, Any]:
    runs = [study.work.pretrain(model.name, p.suffix) for p in model_phases(study.cfg, model)]
    pretraining = summary.pretraining_summary(runs)
    pretraining.pop("curve")
    return {"validation_accuracy": scores, **summary.mean_std(scores),
            "pretraining": pretraining}


def run_pilot(cfg: StudyConfig) -> int:
    study = resolve(cfg)
    sources = Sources(study.data)
    outputs = run_cached_stages(study, sources)[0]
    train = outputs["task files"]["100pct"]
    validation = validation_split(sources.nsmc_train, train, study.work.root / "validation.txt",
                                  study.cfg.pilot_reviews)
    inputs = {"train": train, "dev": validation, "split": None, "limit": None}
    models = {}
    # The models whose stages `stage_list` kept under --pilot (the review corpus's).
    for model in (m for m in pretrained_models(study.cfg) if f"export/{m.name}" in outputs):
        scores = _finetune(study, model.name, outputs[f"export/{model.name}"], inputs)
        models[model.name] = _model_record(study, model, scores)
    record = {"settings": config.to_dict(study.cfg), "validation_file": str(validation),
              "validation_sha256": atomic.file_sha256(validation), "models": models}
    atomic.write_text(study.work.root / RESULTS_FILE, json.dumps(record, indent=2))
    for name, m in models.items():
        print(f"{name}: NSMC validation {m['mean']:.2f} over seeds {study.cfg.seeds} "
              f"({' / '.join(f'{s:.2f}' for s in m['validation_accuracy'])}); pretraining "
              f"{m['pretraining']['steps']} steps in {m['pretraining']['seconds']:.0f} s")
    print(f"written: {study.work.root / RESULTS_FILE}")
    return 0
