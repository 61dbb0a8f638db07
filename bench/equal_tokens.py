"""Held-out MLM loss per real token: one system at a time, at chosen steps, learning rate and batch.

    python -m bench.equal_tokens baseline:150:5e-4:32 hanlm:41:5e-4:32 hanlm:82:5e-4:16
    python -m bench.equal_tokens hanlm:t104393:5e-4:32:200:4

Each RUN is SYSTEM:STEPS:LR:BATCH, for hanlm optionally followed by :RAMP_STEPS:RAMP_START (its
batch-size ramp, `hanlm pretrain --batch-ramp-steps/--batch-ramp-start`). STEPS written tN means
"as many steps as hanlm's data order needs to show N real tokens" (the baseline's 150 steps in
run G showed 104,393). The runs use `bench.pretrain`'s full-mode workspace (the first
100,000 reviews, the same tokenizer, NSP examples and held-out batches) and print one JSON line
each: the real tokens the run saw and its held-out loss at every evaluation as [step, real tokens,
loss, own seconds]. This is the sweep behind "equal or better MLM loss after the same number of
real tokens" in docs/BENCHMARKS.md; the seconds compare runs only on a quiet machine (each run is
alone, not interleaved with another as in `bench.pretrain`). hanlm runs use `hanlm pretrain`'s
defaults, whose MLM bias starts at the token frequencies; `--mlm-bias-init zeros` starts it where
the baseline does (Hugging Face's zeros) and adds `-bias0` to the run's name.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from bench import corpus
from bench.pretrain import FULL, loss_curve, run_alone, steps_for_tokens
from bench.systems import add_mlm_bias_init_option


@dataclass(frozen=True)
class Run:
    system: str
    steps: int  # negative: -N stands for "the steps that show N real tokens" (tN)
    lr: float
    batch_size: int
    ramp_steps: int = 0
    ramp_start: int = 4

    @classmethod
    def parse(cls, text: str) -> Run:
        try:
            system, steps, lr, batch, *ramp = text.split(":")
            count = -int(steps[1:]) if steps.startswith("t") else int(steps)
            run = cls(system, count, float(lr), int(batch), *map(int, ramp))
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(f"{text!r}: expected SYSTEM:STEPS:LR:BATCH[:RAMP_STEPS:RAMP_START], "
                                             "e.g. hanlm:41:5e-4:32") from None
        if (run.system not in ("baseline", "hanlm") or min(abs(run.steps), run.batch_size, run.ramp_start) < 1
                or run.lr <= 0 or (run.system == "baseline" and (run.ramp_steps or run.steps < 0))):
            raise argparse.ArgumentTypeError(f"{text!r}: SYSTEM is baseline or hanlm; STEPS, LR and "
                                             "BATCH are positive; only hanlm has a ramp or tN steps")
        return run

    @property
    def overrides(self) -> dict:
        return {"batch_ramp_steps": self.ramp_steps, "batch_ramp_start": self.ramp_start} if self.ramp_steps else {}

    def name(self, steps: int) -> str:
        ramp = f"-ramp{self.ramp_steps}from{self.ramp_start}" if self.ramp_steps else ""
        return f"{self.system}-{steps}-{self.lr:g}-{self.batch_size}{ramp}"


def hanlm_steps_for_tokens(run: Run, data: str, tokens: int) -> int:
    """The steps after which hanlm's data order (batch, ramp, buckets) has shown `tokens` real tokens."""
    from bench.systems import hanlm_batches
    from hanlm.train.pretrain import PretrainConfig

    cfg = PretrainConfig(data=data, out="-", batch_size=run.batch_size, max_steps=max(1, tokens // run.batch_size),
                         **run.overrides)
    return steps_for_tokens({"batches": hanlm_batches(cfg)}, tokens)


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
    add_mlm_bias_init_option(parser, help="hanlm runs' MLM bias at step 0 (`hanlm pretrain "
                             "--mlm-bias-init`; zeros = the baseline's start)")
    args = parser.parse_args(argv)
    needed = max([r.steps * r.batch_size for r in args.runs if r.system == "baseline"], default=0)
    if needed > args.baseline_pairs:
        parser.error(f"the baseline runs need {needed} NSP examples: raise --baseline-pairs")
    ws = corpus.prepare(Path(args.work), reviews=args.reviews, vocab_size=args.vocab_size,
                        tokenizer_texts=FULL["tokenizer_texts"], pairs=args.baseline_pairs,
                        heldout_rows=args.heldout_rows)
    rows = []
    for run in args.runs:
        steps = run.steps if run.steps > 0 else hanlm_steps_for_tokens(run, ws.run_inputs()["data"], -run.steps)
        name = run.name(steps) + ("-bias0" if run.system == "hanlm" and args.mlm_bias_init == "zeros" else "")
        overrides = {**run.overrides, "mlm_bias_init": args.mlm_bias_init} if run.system == "hanlm" else {}
        spec = dict(preset=args.preset, steps=steps, eval_every=max(1, steps // 4),
                    batch_size=run.batch_size, out=str(Path(args.work) / "runs" / "equal-tokens" / name),
                    lr=run.lr, hanlm_overrides=overrides, **ws.run_inputs())
        result = run_alone(spec, run.system)
        seconds, tokens, losses = loss_curve(result)
        row = {"run": name, "real_tokens": int(tokens[-1]), "final_loss": round(float(losses[-1]), 4),
               "evals": [[e["step"], int(t), round(float(loss), 4), round(float(s), 1)]
                         for e, t, loss, s in zip(result["evals"], tokens, losses, seconds, strict=True)]}
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
