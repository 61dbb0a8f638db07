"""Fine-tuning and batch-inference speed: hanlm against the Hugging Face `Trainer`, in one run.

    python -m bench.finetune --quick            # < 10 min on 2 loaded CPU cores
    python -m bench.finetune                    # more steps, the whole NSMC test set
    python -m bench.finetune --quick --baseline torch-dropout   # one lever: hanlm's CPU dropout

Both systems fine-tune the *same* BERT-mini checkpoint (`prepare`: a seeded random
`BertForSequenceClassification` init saved with a WordPiece tokenizer that hanlm trained on the
NSMC training text) on the same NSMC subsample, with the same batch size, learning rate, schedule,
AdamW settings, clipping, seed, step count and max length 128, then predict the same held-out
sample of the NSMC test file:

- **baseline** (`bench/finetune_systems.py: run_baseline`): the strongest `Trainer` set-up: `DataCollatorWithPadding`
  (dynamic padding) with length-grouped batches (`train_sampling_strategy="group_by_length"`),
  the model's default attention (SDPA), in the faster precision of the machine (hanlm's own
  measurement, `choose_precision("auto", hidden)`, so never slower than hanlm's precision), then
  `trainer.predict` on the held-out sample;
- **hanlm** (`bench/finetune_systems.py: run_hanlm`): `hanlm.tasks.run.finetune` with its defaults (precision auto), then
  `hanlm.tasks.run.evaluate` (the `hanlm evaluate` verb, precision auto too) on the model
  directory it wrote.

The two run in two processes that take turns (bench/common.py `Turns`): one optimizer step each
while training, one batch each while predicting, so both meet the same background load. Set-up,
reading, tokenization, saving and scoring run while the other waits and are not timed; the
timed spans are the training steps (data collation, forward, backward, clipping, optimizer,
schedule, per-step logging) and the inference call (`trainer.predict`; hanlm's `run_inference`,
which includes decoding the logits to labelled predictions). Reported per system: training and
inference samples/s (and per CPU-second), the real-token share of the computed positions, peak
RSS, held-out accuracy; then ratios hanlm/baseline. Writes `<out>/finetune[-quick].json`.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.common import (
    Turns,
    columns,
    machine,
    peak_rss_mb,
    print_comparison,
    print_profile_groups,
    write_json,
)
from bench.finetune_systems import BASELINES, Clock, ProfileClock, Spec, systems
from hanlm.model.presets import PRESETS

logger = logging.getLogger(__name__)

NSMC = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "nsmc"
QUICK = {"steps": 150, "eval": 5000, "warmup": 5}
FULL = {"steps": 1500, "eval": 50000, "warmup": 10}


# ---------------------------------------------------------------- inputs, built once


@dataclass
class Workspace:
    model: Path  # HF directory: config.json, model.safetensors, tokenizer files
    train: Path  # NSMC-format TSV subsample (id, document, label)
    eval: Path


def _nsmc_rows(path: Path) -> list[str]:
    """Data lines of an NSMC file whose review is not empty (read as hanlm reads TSV: no quote
    processing)."""
    with path.open(encoding="utf-8") as f:
        next(f)
        return [line for line in f if len(line.rstrip("\n").split("\t")) == 3 and line.split("\t")[1].strip()]


def _subsample(source: Path, out: Path, n: int, seed: int) -> Path:
    if not out.is_file():
        rows = _nsmc_rows(source)
        random.Random(seed).shuffle(rows)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text("id\tdocument\tlabel\n" + "".join(rows[:n]), encoding="utf-8")
        tmp.rename(out)
    return out


def prepare(work: Path, *, nsmc: Path, preset: str, vocab_size: int, train_n: int, eval_n: int,
            seed: int) -> Workspace:
    """Tokenizer (hanlm, on the NSMC training text), one saved model init, two subsamples."""
    from transformers import BertConfig, BertForSequenceClassification

    from hanlm.text import CorpusConfig
    from hanlm.tokenizer import KoreanTokenizer, TokenizerTrainConfig, train_tokenizer

    tok_dir = work / f"tok-nsmc-v{vocab_size}"
    if not (tok_dir / "tokenizer.json").is_file():
        train_tokenizer(TokenizerTrainConfig(
            corpus=[str(nsmc / "ratings_train.txt")], out=str(tok_dir), vocab_size=vocab_size, overwrite=True,
            reader=CorpusConfig(format="tsv", text_column="document", id_column="id", on_error="skip")))
    model_dir = work / f"model-{preset}-v{vocab_size}-s{seed}"
    if not (model_dir / "model.safetensors").is_file():
        tok = KoreanTokenizer.load(tok_dir).hf()
        p = PRESETS[preset]
        config = BertConfig(vocab_size=len(tok), hidden_size=p.hidden, num_hidden_layers=p.layers,
                            num_attention_heads=p.heads, intermediate_size=p.intermediate,
                            pad_token_id=tok.pad_token_id, num_labels=2, id2label={0: "0", 1: "1"},
                            label2id={"0": 0, "1": 1}, problem_type="single_label_classification")
        torch.manual_seed(seed)
        BertForSequenceClassification(config).save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
    return Workspace(model_dir,
                     _subsample(nsmc / "ratings_train.txt", work / f"train-{train_n}-s{seed}.txt", train_n, seed),
                     _subsample(nsmc / "ratings_test.txt", work / f"eval-{eval_n}-s{seed}.txt", eval_n, seed))


def worker(name: str, spec: Spec, turns: Turns, barrier, me: int, queue) -> None:
    logging.basicConfig(level=logging.WARNING)
    turns.acquire(me)  # set-up runs alone too
    clock = Clock(turns, me, barrier)
    try:
        result = systems(spec)[name](spec, clock)
        result.update(segments=clock.segments, peak_rss_mb=peak_rss_mb())
        turns.leave(me)
        queue.put((name, result))
    except BaseException as e:  # report, and never leave the other waiting for the turn
        barrier.abort()
        turns.leave(me)
        queue.put((name, {"error": repr(e)}))
        raise


def profile_worker(name: str, spec: Spec, queue) -> None:
    logging.basicConfig(level=logging.WARNING)
    clock = ProfileClock()
    try:
        result = systems(spec)[name](spec, clock)
        queue.put((name, {"profile": clock.profile, "segments": clock.segments, "batches": result["batches"]["train"]}))
    except BaseException as e:
        queue.put((name, {"error": repr(e)}))
        raise


def run_profiles(spec: Spec) -> dict:
    """Each system alone, one after the other, its training steps under the torch profiler."""
    ctx = mp.get_context("spawn")
    out = {}
    for name in systems(spec):
        queue = ctx.Queue()
        proc = ctx.Process(target=profile_worker, args=(name, spec, queue))
        proc.start()
        out[name] = queue.get()[1]
        proc.join()
        if "error" in out[name]:
            raise RuntimeError(f"{name} failed: {out[name]['error']}")
    return out


def print_profiles(profiles: dict) -> None:
    for name, r in profiles.items():
        p = r["profile"]
        print(f"\n== {name}: torch-profiler self-CPU time of its training steps "
              f"({p['operator_self_cpu_seconds']:.1f} s of operators in {p['wall_seconds']:.1f} s wall, "
              f"real-token fraction {real_token_fraction(r['batches']):.0%})")
        print_profile_groups(p)


def run_pair(spec: Spec) -> dict:
    ctx = mp.get_context("spawn")
    turns, barrier, queue = Turns(2, ctx), ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(name, spec, turns, barrier, k, queue))
             for k, name in enumerate(systems(spec))]
    for p in procs:
        p.start()
    results = dict(queue.get() for _ in procs)
    for p in procs:
        p.join()
    for name, r in results.items():
        if "error" in r:
            raise RuntimeError(f"{name} failed: {r['error']}")
    return results


# ---------------------------------------------------------------- metrics


def real_token_fraction(batches: list[dict]) -> float:
    computed = sum(len(b["lengths"]) * b["width"] for b in batches)
    return sum(sum(b["lengths"]) for b in batches) / computed if computed else 0.0


def system_metrics(r: dict, warmup: int) -> dict:
    steps, train_batches = r["segments"]["train"][warmup:], r["batches"]["train"][warmup:]
    samples = sum(len(b["lengths"]) for b in train_batches)
    real = sum(sum(b["lengths"]) for b in train_batches)
    seconds = sum(s["seconds"] for s in steps)
    cpu = sum(s["cpu_seconds"] for s in steps)
    ev = r["segments"]["eval"]
    eval_seconds, eval_cpu = sum(s["seconds"] for s in ev), sum(s["cpu_seconds"] for s in ev)
    return {
        "attn_implementation": r["attn_implementation"],
        "precision": r["precision"],
        "dropout_modules": r["dropout_modules"],
        # the Trainer predicts under its training setting (autocast); hanlm's evaluate chooses
        "eval_precision": r.get("eval_precision", r["precision"]),
        "train_sampling": r["train_sampling"],
        "train_steps": len(r["segments"]["train"]),
        "train_samples_per_second": samples / seconds,
        "train_samples_per_cpu_second": samples / cpu,
        "train_real_tokens_per_second": real / seconds,
        "train_seconds_per_step_median": statistics.median(s["seconds"] for s in steps),
        "train_real_token_fraction": real_token_fraction(r["batches"]["train"]),
        "eval_examples": r["eval_examples"],
        "eval_seconds": eval_seconds,
        "eval_samples_per_second": r["eval_examples"] / eval_seconds,
        "eval_samples_per_cpu_second": r["eval_examples"] / eval_cpu,
        "eval_real_token_fraction": real_token_fraction(r["batches"]["eval"]),
        "peak_rss_mb_after_train": r["peak_rss_mb_after_train"],
        "peak_rss_mb": r["peak_rss_mb"],
        "accuracy": r["accuracy"],
    }


RATIO_KEYS = ("train_samples_per_second", "train_samples_per_cpu_second", "eval_samples_per_second",
              "eval_samples_per_cpu_second", "peak_rss_mb")


def print_report(report: dict) -> None:
    s = report["systems"]
    print(f"\n== fine-tuning {report['preset']} on NSMC: {report['steps']} steps x {report['batch_size']},"
          f" {s['baseline']['eval_examples']} held-out reviews")
    print(f"{'':>30} {'baseline':>10} {'hanlm':>10} {'hanlm/base':>11}")
    print(f"{'precision, attention':>30} " + " ".join(
        f"{s[k]['precision'] + ' ' + s[k]['attn_implementation'][:5]:>10}" for k in ("baseline", "hanlm")))
    rows = [("train samples/s", "train_samples_per_second", "{:10.1f}"),
            ("train samples/CPU-s", "train_samples_per_cpu_second", "{:10.1f}"),
            ("train real-token fraction", "train_real_token_fraction", "{:10.1%}"),
            ("eval samples/s", "eval_samples_per_second", "{:10.1f}"),
            ("eval samples/CPU-s", "eval_samples_per_cpu_second", "{:10.1f}"),
            ("eval real-token fraction", "eval_real_token_fraction", "{:10.1%}"),
            ("peak RSS MB", "peak_rss_mb", "{:10.0f}"),
            ("held-out accuracy %", "accuracy", "{:10.2f}")]
    print_comparison(rows, s["baseline"], s["hanlm"], report["ratios_hanlm_over_baseline"],
                     label_width=30)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="150 steps, 5,000 held-out reviews (< 10 min)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per system (default per mode)")
    parser.add_argument("--eval-examples", type=int, default=None, help="held-out reviews (default per mode)")
    parser.add_argument("--warmup", type=int, default=None, help="first steps left out of the rates")
    parser.add_argument("--preset", default="mini", choices=list(PRESETS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--nsmc", default=str(NSMC), help="folder with ratings_train.txt and ratings_test.txt")
    parser.add_argument("--work", default="/tmp/hanlm-bench-finetune", help="work directory (tokenizer, model, subsamples)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--baseline", default="trainer", choices=list(BASELINES),
                        help="trainer: the strongest Trainer set-up; torch-dropout: hanlm with "
                             "PyTorch's dropout instead of its CPU dropout (that lever alone)")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the timed comparison: each system alone under the torch profiler")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    mode = QUICK if args.quick else FULL
    steps = args.steps or mode["steps"]
    eval_n = args.eval_examples or mode["eval"]
    warmup = args.warmup if args.warmup is not None else min(mode["warmup"], steps // 5)
    started = time.time()
    work = Path(args.work)
    ws = prepare(work, nsmc=Path(args.nsmc), preset=args.preset, vocab_size=args.vocab_size,
                 train_n=steps * args.batch_size, eval_n=eval_n, seed=args.seed)
    from bench.systems import trainer_precision

    spec = Spec(model=str(ws.model), train=str(ws.train), eval=str(ws.eval), steps=steps,
                batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, lr=args.lr, seed=args.seed,
                out=str(work / f"runs-{int(started)}"), trainer_precision=trainer_precision(PRESETS[args.preset].hidden),
                baseline=args.baseline)
    report = {"command": "python -m bench.finetune " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
              "machine": machine(), "preset": args.preset, "steps": steps, "batch_size": args.batch_size,
              "warmup_steps_excluded": warmup, "spec": asdict(spec),
              "setup_seconds": round(time.time() - started, 1)}
    vs = "" if args.baseline == "trainer" else f"-vs-{args.baseline}"
    if args.profile:
        report["profiles"] = run_profiles(spec)
        out = Path(args.out) / (f"finetune-profile-quick{vs}.json" if args.quick else f"finetune-profile{vs}.json")
        write_json(out, report)
        print_profiles(report["profiles"])
        print(f"\nwrote {out}")
        return report
    logger.info("fine-tuning %s: %d steps per system, %d held-out reviews", args.preset, steps, eval_n)
    results = run_pair(spec)
    report["systems"] = {name: system_metrics(results[name], warmup) for name in systems(spec)}
    b, h = report["systems"]["baseline"], report["systems"]["hanlm"]
    report["ratios_hanlm_over_baseline"] = {key: h[key] / b[key] for key in RATIO_KEYS}
    report["accuracy_difference_points"] = h["accuracy"] - b["accuracy"]
    report["raw"] = {name: {part: {phase: columns(records) for phase, records in r[part].items()}
                            for part in ("segments", "batches")} for name, r in results.items()}
    report["seconds"] = round(time.time() - started, 1)
    report["machine"]["load_average_1min_end"] = machine()["load_average_1min"]
    out = Path(args.out) / (f"finetune-quick{vs}.json" if args.quick else f"finetune{vs}.json")
    write_json(out, report)
    print_report(report)
    print(f"\nwrote {out} in {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
