"""Settings of the `hanlm benchmark` verb. Imports no torch: the CLI reads it for `--help`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hanlm.config import opt


@dataclass
class BenchmarkConfig:
    model: list[str] = opt(help="model directories in Hugging Face format, one or several "
                           "(--model A B) to compare side by side")
    tasks: str = opt("all", "comma-separated tasks (nsmc,klue-nli,...) or all")
    budget: Literal["quick", "standard"] = opt(
        "quick", "quick: small slices, short inputs, 1 seed (<= 15 min for a BERT-mini on 2 "
        "cores); standard: larger slices, 3 seeds (docs/TASKS.md gives its time)")
    seeds: int | None = opt(None, "fine-tuning seeds per model and task (default: the "
                            "budget's)", min=1)
    data: str | None = opt(None, "data folder laid out as ../shared/data (default: "
                           "$HANLM_SHARED_DATA, else ../shared/data)")
    out: str = opt("benchmark-work", "work folder: one run per model/task/seed (reused when "
                   "unchanged) and the report (OUT/BUDGET/benchmark.md, .json, .png)")
    hparams: str | None = opt(None, "YAML of per-task hyper-parameters and data layouts "
                              "(default: hanlm/benchmark/tasks.yaml)")
    limit: int | None = opt(None, "at most N training examples per task (and per held-out "
                            "part), below the budget's: for smoke runs", min=1)
    eval_limit: int | None = opt(None, "at most N test examples per task, below the budget's",
                                 min=1)
    max_steps: int | None = opt(None, "at most N optimizer steps per run, below the budget's",
                                min=1)
    threads: int = opt(0, "CPU threads for PyTorch (0 = its default)", min=0)
    keep_models: bool = opt(False, "keep each run's fine-tuned model (by default only its "
                            "scores are kept)")
    plot: bool = opt(True, "also draw OUT/BUDGET/benchmark.png")
