"""Stages 7 and 8: every model x task x seed fine-tuned through `hanlm.tasks.run.finetune`
(NSMC at each training fraction; KLUE dev sets split at run time with `klue_split`), and
TF-IDF + logistic regression on the same examples (`hanlm.study.baselines`).

Each run and each baseline checks its own inputs: it is reused only when made with exactly the
settings and files it would read now, and redone otherwise, so these stages need no --overwrite.
Fine-tuning evaluates once, after the last step: no model selection on the test data.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

from hanlm import atomic
from hanlm.study.cache import Timings
from hanlm.study.config import StudyConfig
from hanlm.study.corpora import Sources
from hanlm.study.plan import RunSpec, fraction_name, run_specs
from hanlm.study.workdir import WorkDir

logger = logging.getLogger(__name__)

INPUTS_FILE = "inputs.json"


def task_inputs(cfg: StudyConfig, sources: Sources, files: dict[str, Path], spec: RunSpec
                ) -> dict[str, Any]:
    """What a run of `spec` reads: its training file, test file or split, and limit."""
    if spec.task == "nsmc":
        return {"train": files[fraction_name(spec.fraction)], "dev": files["test"],
                "split": None, "limit": None}
    path = sources.nli_dev if spec.task == "klue-nli" else sources.ner_dev
    return {"train": path, "dev": None, "split": cfg.klue_split, "limit": cfg.klue_limit or None}


def load_split(task_name: str, inputs: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """(train, test) examples exactly as `finetune` sees them (same reader, split and limit)."""
    from hanlm.tasks.examples import load_examples
    from hanlm.tasks.registry import get_task

    return load_examples(get_task(task_name), inputs["train"], dev=inputs["dev"],
                         split_dev=inputs["split"], limit=inputs["limit"])


def task_recipe(cfg: StudyConfig, task: str) -> tuple[float, float]:
    """(epochs, peak lr) of a task's runs: NSMC's own, KLUE-NLI/NER's their own."""
    if task == "nsmc":
        return cfg.finetune_epochs, cfg.finetune_lr
    return cfg.klue_finetune_epochs, cfg.klue_finetune_lr


def finetune_steps(cfg: StudyConfig, epochs: float, n_train: int) -> int:
    per_epoch = math.ceil(n_train / cfg.finetune_batch_size)
    return max(cfg.finetune_min_steps, math.ceil(epochs * per_epoch))


def finetune_config(cfg: StudyConfig, spec: RunSpec, model_dir: Path, inputs: dict[str, Any],
                    out: Path) -> Any:
    """The `hanlm finetune` config of one run."""
    from hanlm.tasks.config import DataOptions, FinetuneConfig
    from hanlm.train.config import FinetuneOptimConfig

    n_train = len(load_split(spec.task, inputs)[0])
    epochs, lr = task_recipe(cfg, spec.task)
    return FinetuneConfig(
        task=spec.task, train=str(inputs["train"]), model=str(model_dir), out=str(out),
        dev=str(inputs["dev"]) if inputs["dev"] else None, dropout=cfg.finetune_dropout,
        options=DataOptions(split_dev=inputs["split"], limit=inputs["limit"],
                            max_len=cfg.max_len),
        max_steps=finetune_steps(cfg, epochs, n_train), batch_size=cfg.finetune_batch_size,
        eval_every=0, keep_checkpoints=1, seed=spec.seed, progress=False,
        optim=FinetuneOptimConfig(lr=lr))


def input_digests(inputs: dict[str, Any], model_dir: Path | None = None) -> dict[str, str]:
    """sha256 of the files a run reads: its task files, and the model's weights if any."""
    files = {"model": model_dir / "model.safetensors" if model_dir else None,
             "train": inputs["train"], "dev": inputs["dev"]}
    return {name: atomic.file_sha256(path) for name, path in files.items() if path}


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def finished_with(out: Path, cfg: Any) -> bool:
    import yaml

    from hanlm import config

    saved = out / "config.yaml"
    if not ((out / "metrics.json").is_file() and saved.is_file()):
        return False
    wanted = yaml.safe_load(yaml.safe_dump(config.to_dict(cfg), allow_unicode=True))
    return yaml.safe_load(saved.read_text(encoding="utf-8")) == wanted


def finetune_run(cfg: StudyConfig, work: WorkDir, model_dir: Path, inputs: dict[str, Any],
                 spec: RunSpec) -> tuple[dict[str, Any], bool]:
    """One fine-tuning run: (its metrics.json, whether it was cached).

    A finished run is reused only when it was made with exactly these settings (the config.yaml
    `finetune` wrote next to its metrics) from exactly these inputs (`inputs.json`: digests of
    the model's weights and of the task files), so changing a fine-tuning setting redoes the
    runs it touches and nothing else, and a model pretrained again is never scored by the runs
    of its predecessor.
    """
    from hanlm.tasks.run import finetune

    out = work.finetune(spec.name)
    run_cfg = finetune_config(cfg, spec, model_dir, inputs, out)
    digests = input_digests(inputs, model_dir)
    cached = finished_with(out, run_cfg) and _read_json(out / INPUTS_FILE) == digests
    if not cached:
        if out.exists():
            shutil.rmtree(out)  # killed midway, or made with other settings or inputs
        finetune(run_cfg)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        if not cfg.keep_models:
            shutil.rmtree(out / "model", ignore_errors=True)
        atomic.write_text(out / INPUTS_FILE, json.dumps(digests, indent=2))
    return json.loads((out / "metrics.json").read_text(encoding="utf-8")), cached


def finetune_stage(cfg: StudyConfig, work: WorkDir, sources: Sources, models: dict[str, Path],
                   files: dict[str, Path], timings: Timings) -> list[dict[str, Any]]:
    specs = run_specs(cfg)
    results = []
    for i, spec in enumerate(specs, 1):
        start = time.perf_counter()
        inputs = task_inputs(cfg, sources, files, spec)
        summary, cached = finetune_run(cfg, work, models[spec.model], inputs, spec)
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


def baseline_stage(cfg: StudyConfig, work: WorkDir, sources: Sources, files: dict[str, Path],
                   timings: Timings) -> list[dict[str, Any]]:
    jobs = [(f"nsmc-{fraction_name(f)}", RunSpec("tfidf", "nsmc", f, 0)) for f in cfg.fractions]
    jobs += [(f"{task}-100pct", RunSpec("tfidf", task, 1.0, 0)) for task in ("klue-nli",
                                                                            "klue-ner")]
    results = [_baseline(cfg, work, key, spec, task_inputs(cfg, sources, files, spec), timings)
               for key, spec in jobs]
    if cfg.full_nsmc_baseline:
        full = {"train": sources.nsmc_train, "dev": sources.nsmc_test, "split": None,
                "limit": None}
        results.append(_baseline(cfg, work, "nsmc-full", RunSpec("tfidf", "nsmc", 1.0, 0), full,
                                 timings))
    return results


def _baseline(cfg: StudyConfig, work: WorkDir, key: str, spec: RunSpec, inputs: dict[str, Any],
              timings: Timings) -> dict[str, Any]:
    """One TF-IDF + LR fit, reused when made from the same files, split, limit and seed."""
    from hanlm.study.baselines import run_baseline
    from hanlm.tasks.registry import get_task

    path = work.baseline(key)
    made_from = {"files": input_digests(inputs), "split": inputs["split"],
                 "limit": inputs["limit"], "seed": cfg.seed}
    result = _read_json(path)
    if result is None or result.get("made_from") != made_from:
        start = time.perf_counter()
        train, test = load_split(spec.task, inputs)
        task = get_task(spec.task)
        metrics = run_baseline(task, train, test, seed=cfg.seed)
        seconds = time.perf_counter() - start
        timings.record(f"baseline/{key}", seconds)
        result = {"model": "tfidf", "task": spec.task, "fraction": spec.fraction, "seed": 0,
                  "full_data": key == "nsmc-full", "metric": task.main_metric,
                  "value": metrics[task.main_metric], "metrics": metrics,
                  "train_examples": len(train), "test_examples": len(test),
                  "seconds": round(seconds, 1), "made_from": made_from}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(result, indent=2))
    logger.info("[baseline] %s: %s %.2f", key, result["metric"], result["value"])
    return result
