"""The study's outputs: results.json (every raw figure), PNG plots and report.md.

Figures are percent, as the tasks' metrics return them; a cell is the mean ± sample standard
deviation over the fine-tuning seeds (a single seed has no deviation: shown without ±).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hanlm import atomic
from hanlm.config import read_yaml
from hanlm.train.log import read_metrics

MODEL_NAMES = {"review": "review-pretrained", "general": "general-pretrained",
               "random": "random init", "tfidf": "TF-IDF + LR"}
OBJECTIVE_NAMES = {"bert": "MLM + NSP", "mlm": "MLM", "electra": "ELECTRA"}
CORPORA = ("review", "general")
TASK_NAMES = {"nsmc": "NSMC acc.", "klue-nli": "KLUE-NLI acc.", "klue-ner": "KLUE-NER entity F1"}
TASK_DOMAIN = {"nsmc": "review", "klue-nli": "general", "klue-ner": "general"}
PLOTS = ("pretraining_loss.png", "data_efficiency.png", "domain_heatmap.png")


def parse_model(model: str) -> tuple[str, str] | None:
    """(corpus, objective) of a pretrained model's name (`review`, `general-electra`, ...);
    None for random init and the baseline."""
    corpus, _, objective = model.partition("-")
    if corpus not in CORPORA:
        return None
    return corpus, objective or "bert"


def label(model: str, objectives: int = 1) -> str:
    """`review-pretrained`, `review-pretrained, ELECTRA`: the objective is named when it is not
    the study's original MLM + NSP, or when the study compares several."""
    parsed = parse_model(model)
    if parsed is None:
        return MODEL_NAMES.get(model, model)
    corpus, objective = parsed
    if objective == "bert" and objectives < 2:
        return MODEL_NAMES[corpus]
    return f"{MODEL_NAMES[corpus]}, {OBJECTIVE_NAMES.get(objective, objective)}"


def _objective_count(models: Iterable[str]) -> int:
    return len({p[1] for p in map(parse_model, models) if p is not None})


# ------------------------------------------------------------------------------ collect


def versions() -> dict[str, str]:
    import sklearn
    import tokenizers
    import torch
    import transformers

    import hanlm

    return {"python": platform.python_version(), "hanlm": hanlm.__version__,
            "torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "scikit-learn": sklearn.__version__}


def device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _context_note(final_eval: dict[str, Any]) -> str:
    """The context gain of a pretrained model (hanlm.train.pretrain.evaluate), with what it means
    when it is near zero; empty for runs logged before the metric existed."""
    gain = final_eval.get("mlm_context_gain")
    if gain is None:
        return ""
    plateau = " (still on the MLM plateau: it hardly uses the context)" if gain < 0.25 else ""
    return f", context gain {gain:.2f} nats over token frequencies{plateau}"


def pretraining_summary(run_dirs: list[Path]) -> dict[str, Any]:
    """The pretraining of one corpus: its last run's final figures, steps and seconds summed over
    the runs (phases), and one curve with the step counted on from run to run."""
    steps, seconds, curve, phases = 0, 0.0, [], []
    for run_dir in run_dirs:
        final = json.loads((run_dir / "final_metrics.json").read_text(encoding="utf-8"))
        run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        config = read_yaml(run_dir / "config.yaml")
        curve += [{**{k: r.get(k) for k in ("split", "loss", "mlm_loss", "nsp_loss",
                                            "mlm_accuracy", "mlm_context_gain")},
                   "step": steps + r["step"]}
                  for r in read_metrics(run_dir) if r["split"] in ("train", "eval")]
        phases.append({"steps": final["step"], "batch_size": config["batch_size"],
                       "max_len": run["data_meta"]["max_len"], "final_eval": final["eval"]})
        steps += final["step"]
        seconds += final["seconds"]
    return {"steps": steps, "seconds": seconds, "final_eval": phases[-1]["final_eval"],
            "phases": phases, "curve": curve}


def mean_std(values: Iterable[float]) -> dict[str, Any]:
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def summarize(runs: list[dict], baselines: list[dict], *, review_model: str = "review",
              full_nsmc: dict | None = None) -> dict[str, Any]:
    rows = runs + [b for b in baselines if not b.get("full_data")]
    models = list(dict.fromkeys(r["model"] for r in rows))

    def cell(model: str, task: str, fraction: float) -> dict[str, Any]:
        return mean_std(r["value"] for r in rows if r["model"] == model and r["task"] == task
                        and math.isclose(r["fraction"], fraction))

    table = {m: {t: cell(m, t, 1.0) for t in TASK_NAMES} for m in models}
    fractions = sorted({r["fraction"] for r in rows if r["task"] == "nsmc"})
    efficiency = {m: {f"{f:g}": {**cell(m, "nsmc", f), "train_examples": _examples(rows, m, f)}
                      for f in fractions} for m in models}
    out = {"table": table, "efficiency": efficiency, "domain": domain_gains(table),
           "goals": goals(table, baselines, _examples(runs, review_model, 1.0, "test_examples"),
                          train_examples=_examples(runs, review_model, 1.0),
                          review_model=review_model,
                          full_nsmc=full_nsmc_summary(full_nsmc) if full_nsmc else None)}
    if _objective_count(table) > 1:
        out["objectives"] = objective_winners(table)
        out["objectives_line"] = objectives_text(out["objectives"])
    if full_nsmc:
        out["full_nsmc"] = full_nsmc_summary(full_nsmc)
    return out


def objective_winners(table: dict) -> dict[str, dict[str, dict[str, Any]]]:
    """Per task (all its training data) and pretraining corpus: each objective's mean, the
    objective with the best one, its lead over the next, and whether the lead is within the
    larger seed deviation of the two (None with one seed: no deviation to judge by)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for task in TASK_NAMES:
        out[task] = {}
        for corpus in CORPORA:
            cells = {p[1]: table[m][task] for m in table
                     if (p := parse_model(m)) and p[0] == corpus and table[m][task]["mean"] is not None}
            if not cells:
                continue
            ranked = sorted(cells, key=lambda o: -cells[o]["mean"])
            best = ranked[0]
            entry: dict[str, Any] = {"winner": best,
                                     "means": {o: cells[o]["mean"] for o in ranked},
                                     "lead": None, "within_std": None}
            if len(ranked) > 1:
                second = ranked[1]
                entry["lead"] = cells[best]["mean"] - cells[second]["mean"]
                stds = [cells[o]["std"] for o in (best, second)]
                if None not in stds:
                    entry["within_std"] = entry["lead"] <= max(stds)
            out[task][corpus] = entry
    return out


def full_nsmc_summary(full: dict) -> dict[str, Any]:
    """Per model: mean ± std of the test accuracy over seeds, and whether every seed beat TF-IDF
    in the paired test (exact McNemar p < 0.05 and the bootstrap interval above 0)."""
    models = list(dict.fromkeys(r["model"] for r in full["runs"]))
    out = {}
    for model in models:
        rows = [r for r in full["runs"] if r["model"] == model]
        out[model] = {**mean_std(r["accuracy"] for r in rows),
                      "held_out": mean_std(r["held_out_accuracy"] for r in rows),
                      "difference": mean_std(r["difference"] for r in rows),
                      "beats_tfidf_every_seed": all(r["mcnemar_p"] < 0.05 and
                                                    r["bootstrap_95"][0] > 0 for r in rows),
                      "seeds": [r["seed"] for r in rows]}
    return {"tfidf_accuracy": full["tfidf_accuracy"], "models": out}


def _examples(rows: list[dict], model: str, fraction: float, key: str = "train_examples"
              ) -> int | None:
    """`key` of the first NSMC row of `model` at `fraction` (None when there is none)."""
    for r in rows:
        if r["model"] == model and r["task"] == "nsmc" and math.isclose(r["fraction"], fraction):
            return r[key]
    return None


def _gain(table: dict, model: str, task: str) -> float | None:
    a, b = table.get(model, {}).get(task, {}), table.get("random", {}).get(task, {})
    if a.get("mean") is None or b.get("mean") is None:
        return None
    return a["mean"] - b["mean"]


def domain_gains(table: dict) -> dict[str, dict[str, float | None]]:
    """Points over random init: pretraining domain x task domain (general = mean of tasks), for
    every pretrained model."""
    out = {}
    for model in [m for m in table if parse_model(m)]:
        out[model] = {}
        for domain in ("review", "general"):
            gains = [_gain(table, model, t) for t, d in TASK_DOMAIN.items() if d == domain]
            known = [g for g in gains if g is not None]
            out[model][domain] = statistics.fmean(known) if known else None
    return out


def goals(table: dict, baselines: list[dict], test_examples: int | None = None,
          train_examples: int | None = None, *, review_model: str = "review",
          full_nsmc: dict | None = None) -> dict[str, Any]:
    """The issue's goals for NSMC. TF-IDF on the same data counts as beaten only by more than
    the 95% sampling error of its accuracy on the test sample (normal approximation): a lead
    inside it is a tie on another sample of test reviews. TF-IDF on the full files is compared
    only with a model fine-tuned on as many reviews (`train_examples`): a model that saw 10,000
    reviews is neither ahead of nor behind one fitted on 150,000: that comparison is made by the
    full-NSMC runs (`full_nsmc`, `full_nsmc_summary`) when the study has them, paired."""
    review = table.get(review_model, {}).get("nsmc", {}).get("mean")
    random_init = table.get("random", {}).get("nsmc", {}).get("mean")
    tfidf = table.get("tfidf", {}).get("nsmc", {}).get("mean")
    full_run = next((b for b in baselines if b.get("full_data")), None)
    full = full_run["value"] if full_run else None
    out: dict[str, Any] = {"review_model": review_model, "review_nsmc": review,
                           "random_nsmc": random_init,
                           "tfidf_nsmc_same_data": tfidf, "tfidf_nsmc_full_data": full}
    if review is not None and random_init is not None:
        out["review_minus_random"] = review - random_init
        out["beats_random_by_3"] = review - random_init >= 3
    if review is not None and tfidf is not None:
        p = tfidf / 100
        error = 196 * math.sqrt(p * (1 - p) / test_examples) if test_examples else 0.0
        out.update(review_minus_tfidf=review - tfidf, tfidf_sampling_error_95=error,
                   test_examples=test_examples, beats_tfidf_same_data=review - tfidf > error)
    full_model = (full_nsmc or {}).get("models", {}).get(review_model)
    if full_model is not None:
        out.update(full_nsmc_review=full_model["mean"],
                   tfidf_nsmc_full_data=full_nsmc["tfidf_accuracy"],  # type: ignore[index]
                   beats_tfidf_full_data=full_model["beats_tfidf_every_seed"],
                   full_nsmc_paired=True)
    elif review is not None and full_run is not None:
        full_train = full_run.get("train_examples")
        if train_examples is not None and full_train and train_examples < full_train:
            out.update(review_train_examples=train_examples, tfidf_full_train_examples=full_train)
        else:
            out["beats_tfidf_full_data"] = review > full
    return out


def collect(*, plan: dict, corpora: dict, pretraining: dict, runs: list[dict],
            baselines: list[dict], timings: dict, command: str, wall_seconds: float,
            source: dict[str, str], full_nsmc: dict | None = None) -> dict[str, Any]:
    from hanlm.study.plan import model_name

    # The goals are judged on the first objective's review model.
    review_model = model_name("review", (plan.get("objectives") or ["bert"])[0])
    return {
        "command": command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": versions(), "source_sha256": source, "device": device(), "plan": plan,
        "corpora": corpora,
        "pretraining": pretraining, "runs": runs, "baselines": baselines,
        **({"full_nsmc": full_nsmc} if full_nsmc else {}),
        "summary": summarize(runs, baselines, review_model=review_model, full_nsmc=full_nsmc),
        "timings": {"this_invocation_seconds": round(wall_seconds, 1),
                    "compute_seconds": round(sum(timings.values()), 1), "stages": timings},
    }


# ------------------------------------------------------------------------------ text


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
    n = _objective_count(summary["table"])
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
    n = _objective_count(summary["efficiency"])
    for model, cells in summary["efficiency"].items():
        lines.append(f"| {label(model, n)} | "
                     + " | ".join(fmt(cells[f]) for f in fractions) + " |")
    return "\n".join(lines)


def domain_markdown(summary: dict) -> str:
    d = summary["domain"]
    return "\n".join([
        "| points over random init | review-domain task (NSMC) | general-domain tasks "
        "(mean of KLUE-NLI, KLUE-NER) |", "|---|---:|---:|",
        *(f"| {label(m, _objective_count(d))} | {_signed(d[m]['review'])} | "
          f"{_signed(d[m]['general'])} |" for m in d),
    ])


def objectives_text(winners: dict) -> str:
    """One line: which objective wins each task, per pretraining corpus."""
    parts, unjudged = [], False
    for task, by_corpus in winners.items():
        cells = []
        for corpus, w in by_corpus.items():
            ranked = ", ".join(f"{o} {v:.1f}" for o, v in w["means"].items())
            tie = " (a tie: the lead is within one seed deviation)" if w["within_std"] else ""
            unjudged |= w["within_std"] is None and w["lead"] is not None
            cells.append(f"{corpus} corpus: {w['winner']} ({ranked}){tie}")
        if cells:
            parts.append(f"{TASK_NAMES[task]}: " + "; ".join(cells))
    note = " (one seed: no deviation to judge the leads by)" if unjudged else ""
    return (f"Objectives, best first, per task and pretraining corpus{note}: "
            + " | ".join(parts))


def full_nsmc_markdown(results: dict) -> str:
    full, s = results["full_nsmc"], results["summary"]["full_nsmc"]
    n = _objective_count(s["models"])
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
        lines.append(f"- pretraining {name} ({OBJECTIVE_NAMES.get(p.get('objective', 'bert'))}): "
                     f"{plan['preset']}, {budget} ({phases}) in {p['seconds']:.0f} s; held-out "
                     f"{heads or 'figures: none (no held-out split)'}{_context_note(ev)}")
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
                        label=label(model, _objective_count(results["summary"]["efficiency"])))
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
    n = _objective_count(rows)
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
