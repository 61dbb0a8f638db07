"""Held-out MLM loss per real token: one system at a time, at chosen steps, learning rate and batch.

    python -m bench.equal_tokens baseline:150:5e-4:32 hanlm:41:5e-4:32 hanlm:82:5e-4:16

Each RUN is SYSTEM:STEPS:LR:BATCH. The runs use `bench.pretrain`'s full-mode workspace (the first
100,000 reviews, the same tokenizer, NSP examples and held-out batches) and print one JSON line
each: the real tokens the run saw and its held-out loss at every evaluation. Only losses are
compared (the runs are alone, so their times say nothing): this is the sweep behind "equal or
better MLM loss after the same number of real tokens" in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from bench import corpus
from bench.pretrain import FULL, loss_curve, run_alone


@dataclass(frozen=True)
class Run:
    system: str
    steps: int
    lr: float
    batch_size: int

    @classmethod
    def parse(cls, text: str) -> Run:
        try:
            system, steps, lr, batch = text.split(":")
            run = cls(system, int(steps), float(lr), int(batch))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected SYSTEM:STEPS:LR:BATCH, "
                                             "e.g. hanlm:41:5e-4:32") from None
        if run.system not in ("baseline", "hanlm") or min(run.steps, run.batch_size) < 1 or run.lr <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: SYSTEM is baseline or hanlm; STEPS, LR and "
                                             "BATCH are positive")
        return run

    @property
    def name(self) -> str:
        return f"{self.system}-{self.steps}-{self.lr:g}-{self.batch_size}"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Run.parse, metavar="RUN")
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--reviews", type=int, default=100_000)
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--baseline-pairs", type=int, default=150 * 32,
                        help="NSP examples drawn for the baseline (run G drew 150 x 32)")
    parser.add_argument("--heldout-rows", type=int, default=FULL["heldout_rows"])
    parser.add_argument("--work", default="/tmp/hanlm-bench")
    parser.add_argument("--out", default=None, help="also append the JSON lines to this file")
    args = parser.parse_args(argv)
    needed = max([r.steps * r.batch_size for r in args.runs if r.system == "baseline"], default=0)
    if needed > args.baseline_pairs:
        parser.error(f"the baseline runs need {needed} NSP examples: raise --baseline-pairs")
    ws = corpus.prepare(Path(args.work), reviews=args.reviews, vocab_size=args.vocab_size,
                        tokenizer_texts=FULL["tokenizer_texts"], pairs=args.baseline_pairs,
                        heldout_rows=args.heldout_rows)
    rows = []
    for run in args.runs:
        spec = dict(preset=args.preset, steps=run.steps, eval_every=max(1, run.steps // 4),
                    batch_size=run.batch_size, out=str(Path(args.work) / "runs" / "equal-tokens" / run.name),
                    lr=run.lr, **ws.run_inputs())
        result = run_alone(spec, run.system)
        _, tokens, losses = loss_curve(result)
        row = {"run": run.name, "real_tokens": int(tokens[-1]), "final_loss": round(float(losses[-1]), 4),
               "evals": [[e["step"], int(t), round(float(loss), 4)]
                         for e, t, loss in zip(result["evals"], tokens, losses, strict=True)]}
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
