"""The benchmark's table: one row per model, one column per task, mean ± std over seeds.

Written three ways from one structure (`build_report`): markdown, JSON, and a bar plot
(matplotlib, imported only to draw). Torch-free.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from hanlm import atomic
from hanlm.benchmark.plan import Plan, TaskPlan


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1); no std for a single value."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else None


def build_report(plan: Plan, models: list[tuple[str, Path]], runs: list[dict[str, Any]],
                 main_metrics: dict[str, str], seconds: float) -> dict[str, Any]:
    tasks = [_task_entry(t, main_metrics[t.name], runs) for t in plan.tasks]
    table: dict[str, dict[str, Any]] = {}
    for label, _ in models:
        table[label] = {t.name: _cell(t, label, main_metrics[t.name], runs) for t in plan.tasks}
    return {
        "budget": plan.budget, "data": str(plan.data_dir), "seeds": list(plan.seeds),
        "models": [{"name": label, "path": str(path)} for label, path in models],
        "tasks": tasks, "table": table, "runs": runs,
        "reused": sum(bool(r.get("cached")) for r in runs), "seconds": round(seconds, 1),
    }


def _task_entry(task: TaskPlan, metric: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    entry: dict[str, Any] = {"task": task.name, "metric": metric,
                             "settings": task.settings.__dict__.copy()}
    if task.data is None:
        entry.update(status="no data", looked_for=[str(p) for p in task.looked_for],
                     note=no_data_note(task))
        return entry
    mine = [r for r in runs if r["task"] == task.name and "error" not in r]
    entry.update(status="ok", train=str(task.data.train_file), test=str(task.data.test),
                 official_train=task.data.official, split_dev=task.finetune_split,
                 train_examples=mine[0]["train_examples"] if mine else None,
                 test_examples=mine[0]["test_examples"] if mine else None)
    return entry


def no_data_note(task: TaskPlan) -> str:
    return "no data: looked for " + ", ".join(str(p) for p in task.minimal)


def _cell(task: TaskPlan, model: str, metric: str, runs: list[dict[str, Any]]
          ) -> dict[str, Any]:
    if task.data is None:
        return {"status": "no data", "text": no_data_note(task)}
    mine = [r for r in runs if r["task"] == task.name and r["model"] == model]
    errors = [r["error"] for r in mine if "error" in r]
    if errors:
        return {"status": "error", "text": f"error: {errors[0]}", "errors": errors}
    values = [float(r["metrics"][metric]) for r in mine]
    mean, std = mean_std(values)
    every = {}
    for name in mine[0]["metrics"]:
        m, s = mean_std([float(r["metrics"][name]) for r in mine])
        every[name] = {"mean": m, "std": s}
    return {"status": "ok", "metric": metric, "mean": mean, "std": std, "values": values,
            "seeds": [r["seed"] for r in mine], "metrics": every,
            "text": format_value(mean, std)}


def format_value(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


# ------------------------------------------------------------------------------ writers


def markdown(report: dict[str, Any]) -> str:
    tasks = report["tasks"]
    seeds = report["seeds"]
    lines = [
        f"# Benchmark ({report['budget']})", "",
        f"Data: `{report['data']}`. Seeds: {', '.join(map(str, seeds))}. Each cell is the "
        "task's official main metric (percent) on its test, "
        + ("mean ± sample std over the seeds." if len(seeds) > 1 else "one seed."), "",
        "| model | " + " | ".join(f"{t['task']} ({t['metric']})" for t in tasks) + " |",
        "|---|" + "---:|" * len(tasks),
    ]
    for model, cells in report["table"].items():
        lines.append(f"| {model} | " + " | ".join(cells[t["task"]]["text"] for t in tasks)
                     + " |")
    lines += ["", "## Tasks", "",
              "| task | fine-tuned on | scored on (the test) | train / test examples |",
              "|---|---|---|---|"]
    for t in tasks:
        if t["status"] != "ok":
            lines.append(f"| {t['task']} | {t['note']} | | |")
            continue
        s = t["settings"]
        train, test = _relative(t["train"], report), _relative(t["test"], report)
        if t["official_train"]:
            train = f"`{train}`" + (f" less a held-out {t['split_dev']} (model selection)"
                                    if t["split_dev"] else " (no selection)")
            test = f"`{test}`, the official dev file"
        else:
            train = f"`{train}` less the held-out {t['split_dev']} part (no selection)"
            test = "that held-out part"
        test += "" if s["eval_limit"] is None else f", first {s['eval_limit']}"
        lines.append(f"| {t['task']} | {train} | {test} | {t['train_examples']} / "
                     f"{t['test_examples']} |")
    lines += ["", "Settings (hanlm/benchmark/tasks.yaml, the same for every model):", "",
              "| task | train_limit | max_len | epochs | max_steps | batch | lr | eval_every |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for t in tasks:
        s = t["settings"]
        lines.append(f"| {t['task']} | {s['train_limit']} | {s['max_len']} | {s['epochs']} | "
                     f"{s['max_steps']} | {s['batch_size']} | {s['lr']:g} | "
                     f"{s['eval_every']} |")
    lines += ["", "## Every metric", "", "| model | task | metrics |", "|---|---|---|"]
    for model, cells in report["table"].items():
        for t in tasks:
            cell = cells[t["task"]]
            if cell["status"] == "ok":
                every = ", ".join(f"{name} {format_value(v['mean'], v['std'])}"
                                  for name, v in cell["metrics"].items())
                lines.append(f"| {model} | {t['task']} | {every} |")
    missing = [t for t in tasks if t["status"] != "ok"]
    if missing:
        lines += ["", "## Not run", ""]
        lines += [f"- {t['task']}: no data: looked for " + ", ".join(t["looked_for"])
                  for t in missing]
    runs = report["runs"]
    done = [r for r in runs if "error" not in r]
    wall = sum(r["wall_seconds"] for r in done)
    cpu = sum(r["cpu_seconds"] for r in done)
    lines += ["", f"{len(runs)} runs ({report['reused']} reused from an earlier invocation); "
              f"this invocation took {duration(report['seconds'])}. The runs took "
              f"{duration(wall)} ({duration(cpu)} of CPU time) when they were made:", "",
              "| model | task | seed | train / test examples | steps | time | CPU time |",
              "|---|---|---:|---|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['task']} | {r['seed']} | {r['train_examples']} / "
              f"{r['test_examples']} | {r['steps']} | {duration(r['wall_seconds'])} | "
              f"{duration(r['cpu_seconds'])} |" for r in done]
    return "\n".join(lines) + "\n"


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _relative(path: str, report: dict[str, Any]) -> str:
    """`path` relative to the data folder, which the report names once."""
    try:
        return str(Path(path).relative_to(report["data"]))
    except ValueError:
        return path


def plot(report: dict[str, Any], path: Path) -> Path | None:
    """Grouped bars: a group per task with data, a bar per model, std as the error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in report["tasks"] if t["status"] == "ok"]
    models = list(report["table"])
    if not tasks:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(tasks) * max(1, len(models)) ** 0.5),
                                    4.0))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        cells = [report["table"][model][t["task"]] for t in tasks]
        means = [c.get("mean", math.nan) for c in cells]
        stds = [c.get("std") or 0.0 for c in cells]
        xs = [k + (i - (len(models) - 1) / 2) * width for k in range(len(tasks))]
        ax.bar(xs, means, width, yerr=stds if any(stds) else None, capsize=3, label=model)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels([f"{t['task']}\n{t['metric']}" for t in tasks], fontsize=8)
    ax.set_ylabel("official main metric (%)")
    lowest = min((c["mean"] for m in models for t in tasks
                  if "mean" in (c := report["table"][m][t["task"]])), default=0.0)
    ax.set_ylim(min(0.0, lowest - 5), 100)
    seeds = len(report["seeds"])
    ax.set_title(f"hanlm benchmark ({report['budget']}, {seeds} seed{'s' if seeds > 1 else ''})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(report: dict[str, Any], root: Path, *, plot_it: bool = True) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": root / "benchmark.md", "json": root / "benchmark.json"}
    atomic.write_text(paths["markdown"], markdown(report))
    atomic.write_text(paths["json"], json.dumps(report, indent=2, ensure_ascii=False))
    if plot_it:
        drawn = plot(report, root / "benchmark.png")
        if drawn is not None:
            paths["plot"] = drawn
    return paths
