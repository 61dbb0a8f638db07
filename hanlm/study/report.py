"""The study's report: results.json, report.md and the plots, rendered from the figures of
summary.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hanlm import atomic
from hanlm.study.summary import (
    CORPORA,
    OBJECTIVE_NAMES,
    PLOTS,
    TASK_NAMES,
    context_note,
    continued_text,
    label,
    objective_count,
    objectives_text,
)


def fmt(cell: dict[str, Any]) -> str:
    if cell.get("mean") is None:
        return "–"
    if cell.get("std") is None:
        return f"{cell['mean']:.1f}"
    return f"{cell['mean']:.1f} ± {cell['std']:.1f}"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}"


def table_markdown(summary: dict) -> str:
    lines = ["| model | " + " | ".join(TASK_NAMES.values()) + " |",
             "|---|" + "---:|" * len(TASK_NAMES)]
    n = objective_count(summary["table"])
    for model, cells in summary["table"].items():
        lines.append(f"| {label(model, n)} | "
                     + " | ".join(fmt(cells[t]) for t in TASK_NAMES) + " |")
    return "\n".join(lines)


def efficiency_markdown(summary: dict) -> str:
    fractions = list(next(iter(summary["efficiency"].values())))
    counts = {f: next((c[f]["train_examples"] for c in summary["efficiency"].values()
                       if c[f]["train_examples"]), None) for f in fractions}
    head = " | ".join(f"{float(f) * 100:g}% ({counts[f]:,})" if counts[f] else f
                      for f in fractions)
    lines = [f"| model | {head} |", "|---|" + "---:|" * len(fractions)]
    n = objective_count(summary["efficiency"])
    for model, cells in summary["efficiency"].items():
        lines.append(f"| {label(model, n)} | "
                     + " | ".join(fmt(cells[f]) for f in fractions) + " |")
    return "\n".join(lines)


def domain_markdown(summary: dict) -> str:
    d = summary["domain"]
    return "\n".join([
        "| points over random init | review-domain task (NSMC) | general-domain tasks "
        "(mean of KLUE-NLI, KLUE-NER) |", "|---|---:|---:|",
        *(f"| {label(m, objective_count(d))} | {_signed(d[m]['review'])} | "
          f"{_signed(d[m]['general'])} |" for m in d),
    ])


def full_nsmc_markdown(results: dict) -> str:
    full, s = results["full_nsmc"], results["summary"]["full_nsmc"]
    n = objective_count(s["models"])
    seeds = next(iter(s["models"].values()))["seeds"]
    lines = [
        f"Full NSMC: fine-tuned on {full['runs'][0]['train_examples']:,} training reviews "
        f"({full['runs'][0]['held_out_examples']:,} held out for selection, --split-dev "
        f"{full['split_dev']}), {full['epochs']:g} epochs, lr {full['lr']:g}; scored on all "
        f"{full['test_examples']:,} test reviews against TF-IDF + LR on all "
        f"{full['tfidf_train_examples']:,} training reviews ({full['tfidf_accuracy']:.2f}), "
        "paired (exact McNemar, paired bootstrap over reviews):",
        f"| model | test accuracy, seeds {' / '.join(map(str, seeds))} | mean ± std | held-out "
        "| vs TF-IDF: right only / wrong only, McNemar p, difference (95%) |",
        "|---|---|---:|---:|---|"]
    for model, m in s["models"].items():
        rows = [r for r in full["runs"] if r["model"] == model]
        versus = "; ".join(f"{r['right_where_tfidf_wrong']} / {r['wrong_where_tfidf_right']}, p "
                           f"{r['mcnemar_p']:.2g}, {r['difference']:+.2f} "
                           f"({r['bootstrap_95'][0]:+.2f} to {r['bootstrap_95'][1]:+.2f})"
                           for r in rows)
        mean = f"{m['mean']:.2f}" + (f" ± {m['std']:.2f}" if m["std"] is not None else "")
        accuracies = " / ".join(f"{r['accuracy']:.3f}" for r in rows)
        lines.append(f"| {label(model, n)} | {accuracies} | {mean} | {fmt(m['held_out'])} | "
                     f"{versus} |")
    return "\n".join(lines)


def _versus_tfidf(g: dict) -> str:
    lead, error = g.get("review_minus_tfidf"), g.get("tfidf_sampling_error_95")
    if g.get("beats_tfidf_same_data"):
        return "beaten"
    if lead is not None and error and lead > 0:
        return (f"not beaten: {lead:+.1f} points, inside the 95% sampling error of "
                f"{g['test_examples']:,} test reviews, ±{error:.1f}")
    return "not beaten"


def goals_text(g: dict) -> str:
    def pct(v):
        return "–" if v is None else f"{v:.1f}"

    parts = [f"{label(g.get('review_model', 'review'))} NSMC {pct(g.get('review_nsmc'))} vs "
             f"random init "
             f"{pct(g.get('random_nsmc'))} ({_signed(g.get('review_minus_random'))} points; "
             f"goal >= +3: {'met' if g.get('beats_random_by_3') else 'not met'})",
             f"vs TF-IDF + LR on the same training data {pct(g.get('tfidf_nsmc_same_data'))} "
             f"({_versus_tfidf(g)})"]
    if g.get("full_nsmc_paired"):
        verdict = ("beaten by every seed, paired" if g["beats_tfidf_full_data"] else
                   "not beaten by every seed, paired")
        parts.append(f"fine-tuned on all of NSMC {pct(g['full_nsmc_review'])} vs TF-IDF + LR on "
                     f"all 150K training reviews, on all 50K test reviews "
                     f"{pct(g['tfidf_nsmc_full_data'])} ({verdict})")
    elif g.get("tfidf_nsmc_full_data") is not None:
        if "beats_tfidf_full_data" in g:
            verdict = "beaten" if g["beats_tfidf_full_data"] else "not beaten"
        else:
            verdict = (f"not compared: the model was fine-tuned on {g['review_train_examples']:,} "
                       f"reviews, TF-IDF on {g['tfidf_full_train_examples']:,}; "
                       f"`hanlm study --full-nsmc` fine-tunes on all of them")
        parts.append(f"vs TF-IDF + LR on all 150K training reviews, all 50K test reviews "
                     f"{pct(g['tfidf_nsmc_full_data'])} ({verdict})")
    return "; ".join(parts)


def facts_markdown(results: dict) -> str:
    plan, corpora = results["plan"], results["corpora"]["corpora"]
    pre = results["pretraining"]
    lines = [f"- command: `{results['command']}`", f"- date: {results['date']}",
             f"- device: {results['device']}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items())]
    source = results.get("source_sha256", {})  # absent in results.json of older code
    if source:
        lines.append(f"- hanlm source sha256: {source['this_invocation'][:12]}"
                     + (f" (cached stages made by other code: {source['work_dir_made_by'][:12]})"
                        if source["work_dir_made_by"] != source["this_invocation"] else ""))
    for name in CORPORA:
        c = corpora[name]
        extra = (f"; sources (characters): {', '.join(f'{k} {v:,}' for k, v in c['sources'].items())}"
                 if "sources" in c else "")
        lines.append(f"- {name} corpus: {c['chars']:,} characters, {c['documents']:,} documents, "
                     f"{c['lines']:,} lines; dropped {c['dropped']}{extra}")
    timed = plan.get("pretrain_budget") == "minutes"
    for name, p in pre.items():
        ev = p["final_eval"] or {}
        phases = " then ".join(f"{ph['steps']} x {ph['batch_size']} sequences of {ph['max_len']} "
                               f"tokens" for ph in p.get("phases", []))
        if timed:
            budget = f"{p['steps']} steps in its {plan['pretrain_minutes']:g}-minute budget"
        else:
            capped = " (stopped by the time cap)" if p["steps"] < plan["pretrain_steps"] else ""
            budget = f"{p['steps']} of {plan['pretrain_steps']} steps{capped}"
        heads = ", ".join(f"{what} {ev[key] * 100:.1f}%" for key, what in (
            ("mlm_accuracy", "MLM accuracy" + (" (generator)" if "rtd_accuracy" in ev else "")),
            ("nsp_accuracy", "NSP accuracy"), ("rtd_accuracy", "replaced-token accuracy"))
            if key in ev)
        start = (f", from the general model at lr {plan['continued_lr']:g}"
                 if p.get("corpus") == "continued" else "")
        lines.append(f"- pretraining {name} ({OBJECTIVE_NAMES.get(p.get('objective', 'bert'))}): "
                     f"{plan['preset']}, {budget} ({phases}){start} in {p['seconds']:.0f} s; held-out "
                     f"{heads or 'figures: none (no held-out split)'}{context_note(ev)}")
    t = results["timings"]
    lines.append(f"- wall time of this invocation: {t['this_invocation_seconds'] / 60:.1f} min; "
                 f"compute time of all stages (summed over resumed invocations): "
                 f"{t['compute_seconds'] / 60:.1f} min")
    return "\n".join(lines)


def summary_text(results: dict) -> str:
    s = results["summary"]
    parts = ["Fine-tuned scores (percent; mean ± std over seeds), 100% of the training data:",
             table_markdown(s)]
    if s.get("objectives"):
        parts.append(objectives_text(s["objectives"]))
    if s.get("continued"):
        parts.append("Continued pretraining, each against its objective's review-pretrained "
                     "and general-pretrained models:\n" + continued_text(s["continued"]))
    parts += ["NSMC accuracy by training fraction (examples):", efficiency_markdown(s),
              "Pretraining domain x task domain:", domain_markdown(s)]
    if s.get("full_nsmc"):
        parts.append(full_nsmc_markdown(results))
    return "\n\n".join([*parts, "Goal: " + goals_text(s["goals"]), facts_markdown(results)])


def report_markdown(results: dict) -> str:
    return "\n\n".join([
        f"# Domain study ({results['plan']['mode']})", summary_text(results),
        "![pretraining loss](pretraining_loss.png)",
        "![data efficiency](data_efficiency.png)", "![domain heat map](domain_heatmap.png)",
    ]) + "\n"


# ------------------------------------------------------------------------------ plots


def plot_pretraining(results: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for name, p in results["pretraining"].items():
        train = [r for r in p["curve"] if r["split"] == "train"]
        evals = [r for r in p["curve"] if r["split"] == "eval"]
        what = OBJECTIVE_NAMES.get(p.get("objective", "bert"), "")
        line, = ax.plot([r["step"] for r in train], [r["loss"] for r in train],
                        label=f"{name}: train {what}", alpha=0.8)
        ax.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o--",
                color=line.get_color(), label=f"{name}: held-out")
    first = next(iter(results["pretraining"].values()), {}).get("phases", [])
    if len(first) > 1:
        ax.axvline(first[0]["steps"], color="gray", linestyle=":",
                   label=f"{first[0]['max_len']} -> {first[-1]['max_len']} tokens")
    ax.set(xlabel="step", ylabel="loss",
           title="Pretraining loss (each corpus with its own tokenizer)")
    if any(p.get("objective") == "electra" for p in results["pretraining"].values()):
        ax.set_yscale("log")  # ELECTRA's loss weighs replaced-token detection by 50
    ax.legend()
    _save(fig, path)


def plot_efficiency(results: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for model, cells in results["summary"]["efficiency"].items():
        points = [(c["train_examples"], c["mean"], c["std"] or 0) for c in cells.values()
                  if c["mean"] is not None and c["train_examples"]]
        if points:
            x, y, err = zip(*points, strict=True)
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3,
                        label=label(model, objective_count(results["summary"]["efficiency"])))
    full = results["summary"]["goals"].get("tfidf_nsmc_full_data")
    if full is not None:
        ax.axhline(full, color="gray", linestyle=":", label="TF-IDF + LR, all 150K")
    ax.set(xscale="log", xlabel="NSMC training reviews", ylabel="test accuracy (%)",
           title="Data efficiency on NSMC")
    ax.legend()
    _save(fig, path)


def plot_domain(results: dict, path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    domain = results["summary"]["domain"]
    rows, cols = list(domain), ("review", "general")
    grid = np.array([[np.nan if domain[r][c] is None else domain[r][c] for c in cols]
                     for r in rows])
    fig, ax = plt.subplots(figsize=(5, 2 + len(rows)))
    limit = max(1.0, float(np.nanmax(np.abs(grid)))) if np.isfinite(grid).any() else 1.0
    image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit)
    for i in range(len(rows)):
        for j in range(2):
            text = "–" if np.isnan(grid[i, j]) else f"{grid[i, j]:+.1f}"
            dark = np.isfinite(grid[i, j]) and abs(grid[i, j]) > 0.6 * limit
            ax.text(j, i, text, ha="center", va="center", fontsize=14,
                    color="white" if dark else "black")
    ax.set_xticks([0, 1], ["NSMC\n(review)", "KLUE-NLI + NER\n(general)"])
    n = objective_count(rows)
    ax.set_yticks(range(len(rows)), [label(r, n).replace("-pretrained", "-\npretrained")
                                     for r in rows])
    ax.set(xlabel="task domain", ylabel="pretraining domain",
           title="Points over random init")
    fig.colorbar(image, ax=ax)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write(results: dict, out: Path) -> list[Path]:
    """results.json, the three plots and report.md into `out`; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", *(out / p for p in PLOTS), out / "report.md"]
    atomic.write_text(paths[0], json.dumps(results, indent=2, ensure_ascii=False))
    for plot, path in zip((plot_pretraining, plot_efficiency, plot_domain), paths[1:4],
                          strict=True):
        plot(results, path)
    atomic.write_text(paths[4], report_markdown(results))
    return paths
