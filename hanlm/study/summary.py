"""The study's figures: every run's metrics summarised per model, task and label fraction
(mean ± std over seeds), the domain gains, the winning objective per task, the goals, and the
record of the run (versions, device, plan) that results.json holds. Rendering them is
report.py's."""

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

from hanlm.config import read_yaml
from hanlm.study.corpora import CORPORA
from hanlm.study.plan import CONTINUED, model_name
from hanlm.train.log import read_metrics

MODEL_NAMES = {"review": "review-pretrained", "general": "general-pretrained",
               "continued": "general, continued on reviews", "random": "random init",
               "tfidf": "TF-IDF + LR"}
OBJECTIVE_NAMES = {"bert": "MLM + NSP", "mlm": "MLM", "electra": "ELECTRA"}
PRETRAINED = (*CORPORA, CONTINUED)
TASK_NAMES = {"nsmc": "NSMC acc.", "klue-nli": "KLUE-NLI acc.", "klue-ner": "KLUE-NER entity F1"}
TASK_DOMAIN = {"nsmc": "review", "klue-nli": "general", "klue-ner": "general"}
PLOTS = ("pretraining_loss.png", "data_efficiency.png", "domain_heatmap.png")


def parse_model(model: str) -> tuple[str, str] | None:
    """(corpus, objective) of a pretrained model's name (`review`, `general-electra`, ...);
    None for random init and the baseline."""
    corpus, _, objective = model.partition("-")
    if corpus not in PRETRAINED:
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


def objective_count(models: Iterable[str]) -> int:
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


def context_note(final_eval: dict[str, Any]) -> str:
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
    if objective_count(table) > 1:
        out["objectives"] = objective_winners(table)
        out["objectives_line"] = objectives_text(out["objectives"])
    if full_nsmc:
        out["full_nsmc"] = full_nsmc_summary(full_nsmc)
    if continued := continued_summary(table):
        out["continued"] = continued
    return out


def continued_summary(table: dict) -> dict[str, dict[str, dict[str, Any]]]:
    """Per continued model and task: its mean against the review and general models of its
    objective, and whether it beats each by more than the larger seed deviation of the pair
    (None with one seed: no deviation to judge by)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    continued = [(m, p[1]) for m in table if (p := parse_model(m)) and p[0] == CONTINUED]
    for model, objective in continued:
        out[model] = {}
        for task in TASK_NAMES:
            own = table[model][task]
            if own["mean"] is None:
                continue
            entry: dict[str, Any] = {"mean": own["mean"]}
            for corpus in CORPORA:
                other = table.get(model_name(corpus, objective), {}).get(task, {})
                if other.get("mean") is None:
                    continue
                lead = own["mean"] - other["mean"]
                stds = [own["std"], other["std"]]
                entry[corpus] = {"mean": other["mean"], "lead": lead,
                                 "beyond_std": None if None in stds else abs(lead) > max(stds)}
            out[model][task] = entry
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


def continued_text(continued: dict) -> str:
    """One line per continued model: its lead over review-from-scratch and general per task."""
    lines = []
    for model, tasks in continued.items():
        cells = []
        for task, e in tasks.items():
            versus = ", ".join(
                f"{e[c]['lead']:+.1f} vs {c}" + {True: " (beyond seed deviation)",
                                                  False: " (within seed deviation)",
                                                  None: ""}[e[c]["beyond_std"]]
                for c in CORPORA if c in e)
            cells.append(f"{TASK_NAMES[task]} {e['mean']:.1f} ({versus})")
        lines.append(f"{label(model)}: " + "; ".join(cells))
    return "\n".join(lines)


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
