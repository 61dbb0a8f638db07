"""Pretraining speed: hanlm against what Hugging Face users write, turn by turn in one run.

    python -m bench.pretrain --quick            # < 15 min on 2 CPU cores
    python -m bench.pretrain                    # the full run (longer; more steps)

For each preset, five processes take turns step by step (bench/common.py `Turns`): the strong
baseline, what a Hugging Face expert writes (bench/systems.py `run_strong`: Trainer + stock
BertForPreTraining with SDPA, dynamic padding, hanlm's own instances, the machine's faster
precision), the same with dropout 0 (`strong-nodropout`, hanlm's pretraining dropout), hanlm
(`run_hanlm`, precision auto), the typical script (`run_baseline`: eager attention, review pairs
padded to 128, fp32) and a dense matmul that samples the machine's ceiling in fp32 and bf16
under the same background load. Reported per system: real (non-padding) tokens/s, samples/s,
peak RSS, executed and useful FLOP/s as fractions of the ceiling of the precision it trains in
(bench/flops.py), held-out MLM loss against own wall time, and the time each takes to reach a
baseline's final held-out loss; then ratios hanlm/strong first, hanlm/typical after. Writes
`<out>/pretrain[-quick].json` and `.png` (held-out loss vs wall time).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import statistics
import time
from pathlib import Path

import numpy as np

from bench import corpus
from bench.common import BENCH_LR, Turns, machine, print_table, write_json
from bench.flops import Dims, step_flops
from bench.systems import (
    LABELS,
    SYSTEMS,
    RunSpec,
    add_mlm_bias_init_option,
    run_ceiling,
    trainer_precision,
    worker,
)
from hanlm.model.presets import PRESETS

logger = logging.getLogger(__name__)

QUICK = {"reviews": 100_000, "tokenizer_texts": 50_000, "steps": {"mini": 20, "small": 8}, "eval_every": 4,
         "heldout_rows": 64}
FULL = {"reviews": None, "tokenizer_texts": 300_000, "steps": {"mini": 300, "small": 150}, "eval_every": 25,
        "heldout_rows": 256}
CEILING_N = 3072  # the ceiling's matrix size (large enough for the best GEMM rate here)
REFERENCES = ("strong", "strong-nodropout", "baseline")  # what hanlm is compared with, headline first


# ---------------------------------------------------------------- running


def run_ring(spec: dict, ceiling_every: float, systems: tuple[str, ...] = tuple(SYSTEMS)) -> dict:
    """The systems and the ceiling sampler in one process each, taking turns step by step."""
    ctx = mp.get_context("spawn")
    turns = Turns(len(systems) + 1, ctx)
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(name, RunSpec(system=name, **spec), turns, k, queue))
             for k, name in enumerate(systems)]
    procs.append(ctx.Process(target=run_ceiling, args=(turns, len(systems), CEILING_N, ceiling_every, queue)))
    for p in procs:
        p.start()
    results = dict(queue.get() for _ in procs)
    for p in procs:
        p.join()
    for name in systems:
        if "error" in results[name]:
            raise RuntimeError(f"{name} failed: {results[name]['error']}")
    return results


def run_alone(spec: dict, system: str = "hanlm") -> dict:
    """One system alone (a ring of one), for a run whose losses matter but whose time does not."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    turns = Turns(1, ctx)  # referenced until the child has started: it unpickles the semaphores
    proc = ctx.Process(target=worker, args=(system, RunSpec(system=system, **spec), turns, 0, queue))
    proc.start()
    _, result = queue.get()
    proc.join()
    if "error" in result:
        raise RuntimeError(f"{system} failed: {result['error']}")
    return result


def steps_for_tokens(result: dict, tokens: int) -> int:
    """The steps after which a run has seen at least `tokens` real tokens (from its data order)."""
    seen = np.cumsum([sum(b["lengths"]) for b in result["batches"]])
    return int(np.searchsorted(seen, tokens)) + 1


def equal_tokens_run(spec: dict, results: dict) -> dict:
    """hanlm trained, with its own schedule to the end, on as many real tokens as the baseline saw:
    the issue's "equal or better final MLM loss after the same number of real tokens". (Reading
    hanlm's loss at that point of its longer run instead would catch it mid-schedule, at a high
    learning rate, against a baseline whose learning rate has decayed to zero.)"""
    tokens = int(loss_curve(results["baseline"])[1][-1])
    steps = steps_for_tokens(results["hanlm"], tokens)
    run = run_alone({**spec, "steps": steps, "eval_every": steps, "out": spec["out"] + "-equal-tokens"})
    return {"baseline_real_tokens": tokens, "hanlm_steps": steps,
            "hanlm_real_tokens": int(loss_curve(run)[1][-1]),
            "baseline_final_loss": results["baseline"]["evals"][-1]["all"],
            "hanlm_final_loss": run["evals"][-1]["all"]}


# ---------------------------------------------------------------- metrics (one function each)


def timed_steps(result: dict, warmup: int) -> tuple[list[dict], list[dict]]:
    """Steps after the first `warmup` (start-up, allocator and cache warm-up) and their batches."""
    return result["steps"][warmup:], result["batches"][warmup:]


def real_tokens_per_second(steps: list[dict], batches: list[dict], clock: str = "seconds") -> float:
    return sum(sum(b["lengths"]) for b in batches) / sum(s[clock] for s in steps)


def samples_per_second(steps: list[dict], batches: list[dict]) -> float:
    return sum(len(b["lengths"]) for b in batches) / sum(s["seconds"] for s in steps)


def flop_rates(steps: list[dict], batches: list[dict], dims: Dims) -> tuple[float, float]:
    """(executed, useful) FLOP/s."""
    executed = useful = 0.0
    for b in batches:
        e, u = step_flops(dims, np.array(b["lengths"]), b["masked"], width=b["width"], head_positions=b["head_positions"])
        executed += e
        useful += u
    seconds = sum(s["seconds"] for s in steps)
    return executed / seconds, useful / seconds


def padding_fraction(batches: list[dict]) -> float:
    computed = sum(len(b["lengths"]) * b["width"] for b in batches)
    return 1 - sum(sum(b["lengths"]) for b in batches) / computed


def loss_curve(result: dict, key: str = "all") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(own seconds, real tokens seen, held-out loss) at each evaluation."""
    tokens = np.concatenate(([0], np.cumsum([sum(b["lengths"]) for b in result["batches"]])))
    evals = result["evals"]
    return (np.array([e["seconds"] for e in evals]), tokens[[e["step"] for e in evals]],
            np.array([e[key] for e in evals]))


def first_reach(x: np.ndarray, loss: np.ndarray, target: float) -> float | None:
    """x (time or tokens) where the loss curve first reaches `target`, interpolated linearly
    between evaluations; None if it never does."""
    for k in range(len(loss)):
        if loss[k] <= target:
            if k == 0:
                return float(x[0])
            frac = (loss[k - 1] - target) / (loss[k - 1] - loss[k])
            return float(x[k - 1] + frac * (x[k] - x[k - 1]))
    return None


def loss_at(x: np.ndarray, loss: np.ndarray, at: float) -> float | None:
    return float(np.interp(at, x, loss)) if at <= x[-1] else None


def system_metrics(result: dict, dims: Dims, ceiling: float, warmup: int) -> dict:
    steps, batches = timed_steps(result, warmup)
    executed, useful = flop_rates(steps, batches, dims)
    return {
        "steps": len(result["steps"]),
        "real_tokens_per_second": real_tokens_per_second(steps, batches),
        "real_tokens_per_cpu_second": real_tokens_per_second(steps, batches, clock="cpu_seconds"),
        "samples_per_second": samples_per_second(steps, batches),
        "seconds_per_step": statistics.median(s["seconds"] for s in steps),
        "padding_fraction": padding_fraction(batches),
        "peak_rss_mb": result["peak_rss_mb"],
        "achieved_flops": executed,
        "achieved_fraction_of_ceiling": executed / ceiling,
        "useful_flops": useful,
        "useful_mfu": useful / ceiling,
        "final_heldout_loss": result["evals"][-1]["all"],
        "final_heldout_loss_by_shape": {k: v for k, v in result["evals"][-1].items() if k not in ("step", "seconds")},
    }


def time_to_loss(base: dict, ours: dict) -> dict:
    """Time for each to reach the baseline's final held-out loss, and hanlm's loss after the
    baseline's number of real tokens."""
    b_sec, b_tok, b_loss = loss_curve(base)
    h_sec, h_tok, h_loss = loss_curve(ours)
    target = float(b_loss[-1])
    t_base, t_ours = first_reach(b_sec, b_loss, target), first_reach(h_sec, h_loss, target)
    return {
        "target_loss": target,
        "baseline_seconds": t_base,
        "hanlm_seconds": t_ours,
        "speedup": (t_base / t_ours) if t_ours else None,
        # hanlm's MLM bias starts at the token frequencies (`--mlm-bias-init unigram`), which on a
        # short run can already score below the baseline's final loss: no finite speedup then
        "hanlm_below_target_at_step_0": bool(h_loss[0] <= target),
        "baseline_real_tokens": int(b_tok[-1]),
        "hanlm_loss_at_baseline_tokens": loss_at(h_tok, h_loss, b_tok[-1]),
        "hanlm_final_loss": float(h_loss[-1]),
    }


RATIO_KEYS = ("real_tokens_per_second", "real_tokens_per_cpu_second", "samples_per_second", "useful_mfu",
              "peak_rss_mb")


def preset_report(preset: str, results: dict, vocab: int, warmup: int) -> dict:
    ceilings = {dtype: statistics.median(samples) for dtype, samples in results["ceiling"].items() if samples}
    p = PRESETS[preset]
    dims = Dims(p.layers, p.hidden, p.intermediate, vocab)
    names = [name for name in SYSTEMS if name in results]
    systems = {}
    for name in names:
        precision = results[name].get("precision", "fp32")
        systems[name] = system_metrics(results[name], dims, ceilings[precision], warmup) | {
            "precision": precision, "ceiling_flops": ceilings[precision],
            "attn_implementation": results[name].get("attn_implementation", "eager"),
            "dropout": results[name].get("hidden_dropout"), "precision_reason": results[name].get("precision_reason")}
    h = systems["hanlm"]
    refs = [name for name in REFERENCES if name in systems]
    return {
        "ceiling_flops": ceilings,
        "ceiling_samples": results["ceiling"],
        "systems": systems,
        "ratios_hanlm_over": {ref: {key: h[key] / systems[ref][key] for key in RATIO_KEYS} for ref in refs},
        "time_to_loss": {ref: time_to_loss(results[ref], results["hanlm"]) for ref in refs},
        "raw": {name: {k: results[name][k] for k in ("lr", "steps", "evals", "peak_rss_mb")} for name in names},
    }


# ---------------------------------------------------------------- output


def print_report(report: dict) -> None:
    for preset, r in report["presets"].items():
        ceilings = ", ".join(f"{dtype} {c / 1e9:.1f} GFLOP/s" for dtype, c in r["ceiling_flops"].items())
        counts = max(len(v) for v in r["ceiling_samples"].values())
        print(f"\n== {preset}: matmul ceiling {ceilings} (medians of {counts} samples)")
        systems = {LABELS[name]: m for name, m in r["systems"].items()}
        ratios = {f"hanlm/{'typical' if ref == 'baseline' else ref}": rs for ref, rs in r["ratios_hanlm_over"].items()}
        print(f"{'precision, attention, dropout':>28} " + " ".join(
            f"{m['precision'] + ' ' + m['attn_implementation'][:5] + ' ' + format(m['dropout'] or 0, 'g'):>20}"
            for m in systems.values()))
        rows = [("real tokens/s", "real_tokens_per_second", "{:.0f}"),
                ("real tokens/CPU-s", "real_tokens_per_cpu_second", "{:.0f}"),
                ("samples/s", "samples_per_second", "{:.2f}"),
                ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
                ("useful MFU", "useful_mfu", "{:.1%}"),
                ("achieved/ceiling", "achieved_fraction_of_ceiling", "{:.1%}"),
                ("padding", "padding_fraction", "{:.1%}"),
                ("final held-out MLM loss", "final_heldout_loss", "{:.3f}")]
        print_table(rows, systems, ratios, label_width=28, width=20)
        if "strong" in r["systems"] and r["systems"]["hanlm"]["precision"] != r["systems"]["strong"]["precision"]:
            print(f"NOTE: hanlm's own measurement chose {r['systems']['hanlm']['precision']}, the strong baselines'"
                  f" {r['systems']['strong']['precision']} (a width where the two are close)")
        for ref, t in r["time_to_loss"].items():
            reached = (f"{t['speedup']:.2f}x faster" if t["speedup"]
                       else "hanlm below it at step 0" if t["hanlm_below_target_at_step_0"] else "not reached")
            print(f"time to {LABELS[ref]}'s final loss {t['target_loss']:.3f}: {LABELS[ref]} "
                  f"{t['baseline_seconds'] or float('nan'):.0f} s, hanlm {t['hanlm_seconds'] or float('nan'):.0f} s: {reached}")
        e = r.get("equal_tokens")
        if e:
            print(f"run of equal real tokens (typical script's): typical {e['baseline_final_loss']:.3f}, hanlm "
                  f"{e['hanlm_final_loss']:.3f} (hanlm: {e['hanlm_steps']} steps, {e['hanlm_real_tokens']:,} vs "
                  f"{e['baseline_real_tokens']:,} tokens)")


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presets = list(report["presets"])
    fig, axes = plt.subplots(1, len(presets), figsize=(6 * len(presets), 4.2), squeeze=False)
    for ax, preset in zip(axes[0], presets, strict=True):
        r = report["presets"][preset]
        for name in r["raw"]:
            evals = r["raw"][name]["evals"]
            ax.plot([e["seconds"] for e in evals], [e["all"] for e in evals], marker="o", label=LABELS[name])
        ax.axhline(r["time_to_loss"]["strong"]["target_loss"], color="grey", linestyle=":",
                   label="HF expert's final loss")
        ax.set_title(f"{preset}: held-out MLM loss vs own wall time")
        ax.set_xlabel("seconds (training steps only)")
        ax.set_ylabel("held-out MLM loss")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small corpus and step counts (< 15 min)")
    parser.add_argument("--presets", nargs="+", default=["mini", "small"], choices=list(PRESETS))
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per system (default per mode/preset)")
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=BENCH_LR,
                        help="peak learning rate of both systems (default: %(default)g, the rate of "
                        "the figures in docs/BENCHMARKS.md)")
    parser.add_argument("--reviews", type=int, default=None, help="use the first N reviews (default per mode)")
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--work", default="/tmp/hanlm-bench", help="work directory (corpus subset, tokenizer, data)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS),
                        help="the systems in the ring (hanlm always runs): leaving out the typical script "
                        "saves most of a BERT-small run's time (its padded steps are the slowest)")
    add_mlm_bias_init_option(parser, help="hanlm's MLM bias at step 0 (its default: token "
                             "frequencies); zeros = the baseline's start, for time-to-loss of the engine alone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    mode = QUICK if args.quick else FULL
    started = time.time()
    reviews = args.reviews if args.reviews is not None else mode["reviews"]
    steps = {p: args.steps or mode["steps"].get(p, 50) for p in args.presets}
    ws = corpus.prepare(Path(args.work), reviews=reviews, vocab_size=args.vocab_size,
                        tokenizer_texts=mode["tokenizer_texts"],
                        pairs=max(steps.values()) * args.batch_size, heldout_rows=mode["heldout_rows"])
    from hanlm.tokenizer import KoreanTokenizer

    vocab = KoreanTokenizer.load(ws.tokenizer).vocab_size
    report = {"command": "python -m bench.pretrain " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
              "machine": machine(), "setup_seconds": None, "workspace": corpus.describe(ws), "presets": {}}
    report["setup_seconds"] = round(time.time() - started, 1)
    out = Path(args.out)
    systems = tuple(name for name in SYSTEMS if name in args.systems or name == "hanlm")
    # A run of fewer systems is named after them, so that it does not replace a full run's report.
    name = ("pretrain-quick" if args.quick else "pretrain") + (
        "" if systems == tuple(SYSTEMS) else "-" + "-".join(systems))
    for preset in args.presets:
        eval_every = args.eval_every or mode["eval_every"]
        spec = dict(preset=preset, steps=steps[preset], eval_every=eval_every, batch_size=args.batch_size,
                    out=str(Path(args.work) / "runs" / preset), lr=args.lr,
                    hanlm_overrides={"mlm_bias_init": args.mlm_bias_init},
                    trainer_precision=trainer_precision(PRESETS[preset].hidden), **ws.run_inputs())
        logger.info("%s: %d steps per system, held-out evaluation every %d", preset, steps[preset], eval_every)
        results = run_ring(spec, ceiling_every=15.0, systems=systems)
        report["presets"][preset] = {"trainer_precision": spec["trainer_precision"],
                                     "trainer_precision_reason": trainer_precision(PRESETS[preset].hidden, reason=True),
                                     **preset_report(preset, results, vocab, warmup=min(3, steps[preset] // 5))}
        write_json(out / f"{name}.json", report)
        if "baseline" in results:
            report["presets"][preset]["equal_tokens"] = equal_tokens_run(spec, results)
            write_json(out / f"{name}.json", report)  # after each preset, so a long run keeps what it measured
    report["seconds"] = round(time.time() - started, 1)
    report["machine"]["load_average_1min_end"] = machine()["load_average_1min"]
    write_json(out / f"{name}.json", report)
    plot(report, out / f"{name}.png")
    print_report(report)
    print(f"\nwrote {out / name}.json and .png in {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
