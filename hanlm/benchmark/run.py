"""`hanlm benchmark`: fine-tune and score each model on every task whose data it finds.

Work folder (``--out``, default ``benchmark-work/``)::

    OUT/BUDGET/benchmark.md        one row per model, one column per task (mean ± std)
    OUT/BUDGET/benchmark.json      the same and every metric, every run, the settings
    OUT/BUDGET/benchmark.png       bars per task, one per model, std as error bars
    OUT/BUDGET/runs/MODEL/TASK/seed-N/
        config.yaml, metrics.json, metrics.jsonl, predictions.jsonl   as `hanlm finetune`
        test.json                  `hanlm evaluate` on the test (the official dev file, or
                                   the held-out part of the split dev file)
        timing.json                wall-clock and CPU seconds of the run
        inputs.json                digests of the model and data files + the evaluation
                                   settings; written last: a run with it is finished

A finished run whose config.yaml and inputs.json match what this invocation would run is
reused, so an interrupted benchmark continues where it stopped and changing one task's
settings reruns only that task.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from hanlm import atomic, config
from hanlm.benchmark.config import BenchmarkConfig  # noqa: F401  (the CLI reads it here)
from hanlm.benchmark.plan import TaskPlan, make_plan
from hanlm.benchmark.report import build_report, write_report
from hanlm.errors import HanlmError

logger = logging.getLogger(__name__)

INPUTS_FILE = "inputs.json"
TEST_FILE = "test.json"
TIMING_FILE = "timing.json"


def run_benchmark(cfg: BenchmarkConfig) -> int:
    from hanlm.tasks.registry import get_task

    plan = make_plan(tasks=cfg.tasks, budget=cfg.budget, seeds=cfg.seeds, data=cfg.data,
                     hparams_path=cfg.hparams,
                     caps={"train_limit": cfg.limit, "eval_limit": cfg.eval_limit,
                           "max_steps": cfg.max_steps})
    models = model_labels(cfg.model)
    root = Path(cfg.out) / plan.budget
    for task in plan.tasks:
        if task.data is None:
            logger.warning("%s: no data: looked for %s", task.name,
                           ", ".join(map(str, task.looked_for)))
    jobs = [(task, label, path, seed) for task in plan.tasks if task.data is not None
            for label, path in models for seed in plan.seeds]
    digests = Digests()
    runs = []
    start = time.perf_counter()
    for i, (task, label, path, seed) in enumerate(jobs, 1):
        run_dir = root / "runs" / label / task.name / f"seed-{seed}"
        began = time.perf_counter()
        try:
            record = run_one(task, path, run_dir, seed, cfg, digests)
        except HanlmError as e:
            logger.error("[%d/%d] %s %s seed %d: %s", i, len(jobs), label, task.name, seed, e)
            record = {"error": str(e)}
        record = {"model": label, "task": task.name, "seed": seed, "run": str(run_dir),
                  **record}
        if "error" not in record:
            main = record["main_metric"]
            logger.info("[%d/%d] %s %s seed %d: %s %.2f (%s)", i, len(jobs), label, task.name,
                        seed, main, record["metrics"][main], "reused" if record["cached"]
                        else f"{time.perf_counter() - began:.0f} s")
        runs.append(record)
    metrics = {task.name: get_task(task.name).main_metric for task in plan.tasks}
    report = build_report(plan, models, runs, metrics, seconds=time.perf_counter() - start)
    paths = write_report(report, root, plot_it=cfg.plot)
    print(paths["markdown"].read_text(encoding="utf-8"))
    logger.info("report: %s", ", ".join(str(p) for p in paths.values()))
    return 1 if any("error" in r for r in runs) else 0


def model_labels(paths: list[str]) -> list[tuple[str, Path]]:
    """(row label, directory) per model: the directory's name, with its parent's name in front
    where two models share a name (``run-a/model``, ``run-b/model``)."""
    dirs = [Path(p) for p in paths]
    for d in dirs:
        if not (d / "config.json").is_file():
            raise HanlmError("not a model directory in Hugging Face format (no config.json)",
                             path=str(d))
    if len({d.resolve() for d in dirs}) < len(dirs):
        raise HanlmError("the same --model is given twice")
    labels = [d.resolve().name for d in dirs]
    if len(set(labels)) < len(labels):
        labels = [f"{d.resolve().parent.name}-{d.resolve().name}" for d in dirs]
    if len(set(labels)) < len(labels):
        labels = [f"{label}-{i}" for i, label in enumerate(labels, 1)]
    return list(zip(labels, dirs, strict=True))


# ------------------------------------------------------------------------------ one run


def run_configs(task: TaskPlan, model: Path, run_dir: Path, seed: int, cfg: BenchmarkConfig
                ) -> tuple[Any, Any]:
    """The `finetune` and `evaluate` settings of one run (hanlm.tasks.config)."""
    from hanlm.tasks.config import DataOptions, EvaluateConfig, FinetuneConfig
    from hanlm.train.config import FinetuneOptimConfig

    s, data = task.settings, task.data
    assert data is not None
    finetune_cfg = FinetuneConfig(
        task=task.name, train=str(data.train_file), model=str(model), out=str(run_dir),
        options=DataOptions(split_dev=task.finetune_split, limit=s.train_limit,
                            max_len=s.max_len, stride=s.stride),
        epochs=s.epochs, max_steps=s.max_steps, batch_size=s.batch_size,
        # Without an official train file the held-out part is the test: no selection on it.
        eval_every=s.eval_every if data.official else 0,
        seed=seed, threads=cfg.threads, progress=False, tensorboard=False, keep_checkpoints=1,
        optim=FinetuneOptimConfig(lr=s.lr))
    evaluate_cfg = EvaluateConfig(
        task=task.name, data=str(data.test), model=str(run_dir),
        output=str(run_dir / TEST_FILE),
        precision="fp32",  # the table's scores do not depend on what `auto` measured
        options=DataOptions(split_dev=None if data.official else data.split_dev,
                            limit=s.eval_limit, max_len=s.max_len, stride=s.stride))
    return finetune_cfg, evaluate_cfg


def run_one(task: TaskPlan, model: Path, run_dir: Path, seed: int, cfg: BenchmarkConfig,
            digests: Digests) -> dict[str, Any]:
    """Fine-tune, then score the test once; or reuse the finished run made the same way."""
    from hanlm.tasks.run import evaluate, finetune

    finetune_cfg, evaluate_cfg = run_configs(task, model, run_dir, seed, cfg)
    assert task.data is not None
    inputs = {"model": digests.model(model), "train": digests.file(task.data.train_file),
              "test": digests.file(task.data.test),
              "evaluate": _plain(config.to_dict(evaluate_cfg))}
    cached = finished_with(run_dir, finetune_cfg, inputs)
    if not cached:
        if run_dir.exists():
            shutil.rmtree(run_dir)  # interrupted, or made with other settings or inputs
        wall, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):  # each verb prints its JSON summary
            finetune(finetune_cfg)
            evaluate(evaluate_cfg)
        # CPU seconds say what a run costs on a machine shared with other jobs, where the
        # wall-clock time says mostly how busy the machine was.
        atomic.write_text(run_dir / TIMING_FILE, json.dumps({
            "wall_seconds": round(time.perf_counter() - wall, 1),
            "cpu_seconds": round(time.process_time() - cpu, 1)}))
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        if not cfg.keep_models:
            shutil.rmtree(run_dir / "model", ignore_errors=True)
        atomic.write_text(run_dir / INPUTS_FILE, json.dumps(inputs, indent=2,
                                                            ensure_ascii=False))
    summary = _read_json(run_dir / "metrics.json")
    test = _read_json(run_dir / TEST_FILE)
    timing = _read_json(run_dir / TIMING_FILE)
    return {"cached": cached, "main_metric": summary["main_metric"], "metrics": test["metrics"],
            "selection": summary["dev"], "train_examples": summary["train_examples"],
            "test_examples": test["examples"], "steps": summary["steps"], **timing}


def finished_with(run_dir: Path, finetune_cfg: Any, inputs: dict[str, Any]) -> bool:
    """Whether `run_dir` holds a finished run of exactly `finetune_cfg` on exactly `inputs`."""
    files = [run_dir / n for n in ("config.yaml", "metrics.json", TEST_FILE, INPUTS_FILE,
                                   TIMING_FILE)]
    if not all(f.is_file() for f in files):
        return False
    try:
        saved = yaml.safe_load(files[0].read_text(encoding="utf-8"))
        done = _read_json(files[3])
    except (yaml.YAMLError, json.JSONDecodeError):
        return False
    return saved == _plain(config.to_dict(finetune_cfg)) and done == inputs


def _plain(tree: dict[str, Any]) -> Any:
    """`tree` as it reads back from YAML/JSON (tuples as lists, and so on)."""
    return yaml.safe_load(yaml.safe_dump(tree, allow_unicode=True))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


class Digests:
    """sha256 of files, each computed once per benchmark (a model is read by every run)."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, int], str] = {}

    def file(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in self._known:
            self._known[key] = atomic.file_sha256(path)
        return self._known[key]

    def model(self, directory: Path) -> dict[str, str]:
        """Every file of the model directory: the weights, config and tokenizer."""
        return {p.name: self.file(p) for p in sorted(directory.iterdir()) if p.is_file()}

