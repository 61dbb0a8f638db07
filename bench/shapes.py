"""How fast a preset's own matmuls run, against the n x n ceiling, in the same run.

    python -m bench.shapes --preset mini --precision bf16      # the pretraining bench's batches
    python -m bench.shapes --preset small --rows 32 --length 88 --rounds 20

Useful MFU (`bench/pretrain.py`) divides by the rate of 3072 x 3072 matmuls. A small model's
matmuls are narrow (BERT-mini: 256 wide, 64 per attention head) and reach only part of that
rate even alone. This bench times every matmul of one pretraining step at the preset's shapes,
forward and backward (the three GEMMs of each linear layer; the four batched products of each
attention), alternating round by round with the n x n ceiling so that both meet the same load,
and prints the FLOP-weighted rate of the step's matmuls as a fraction of the ceiling: the
useful MFU the step would reach if nothing but its matmuls took time. Useful MFU divided by that
fraction is then the share of the step's time its matmuls run at their own best.

The FLOPs are counted as `bench/flops.py` counts useful work (encoder and attention on every
row's `--length` tokens, the MLM head on the masked positions), so the two figures compare.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.common import DTYPES, Stopwatch, machine, matmul_flops_per_second, write_json
from bench.flops import Dims
from hanlm.model.presets import PRESETS


@dataclass(frozen=True)
class Shape:
    name: str
    count: int  # times per training step
    flops: float  # training FLOPs of one occurrence (forward + backward)
    run: Callable[[], None]


def linear(name: str, count: int, rows: int, fan_in: int, fan_out: int, dtype: torch.dtype) -> Shape:
    """A linear layer's forward (x W^T + b) and backward (dx and dW): 3 GEMMs of rows x in x out."""
    x = torch.randn(rows, fan_in, dtype=dtype, requires_grad=True)
    w = torch.randn(fan_out, fan_in, dtype=dtype, requires_grad=True)
    b = torch.zeros(fan_out, dtype=dtype, requires_grad=True)
    grad = torch.randn(rows, fan_out, dtype=dtype)

    def run() -> None:
        F.linear(x, w, b).backward(grad)
        x.grad = w.grad = b.grad = None

    return Shape(name, count, 3 * 2 * rows * fan_in * fan_out, run)


def attention(count: int, rows: int, heads: int, length: int, head_dim: int, dtype: torch.dtype) -> Shape:
    """Q K^T and A V of every head of `rows` sequences, forward and backward (softmax left out,
    as bench/flops.py leaves it out)."""
    q, k, v = (torch.randn(rows * heads, length, head_dim, dtype=dtype, requires_grad=True) for _ in range(3))
    grad = torch.randn(rows * heads, length, head_dim, dtype=dtype)

    def run() -> None:
        torch.bmm(torch.bmm(q, k.transpose(1, 2)), v).backward(grad)
        q.grad = k.grad = v.grad = None

    return Shape("attention (QK^T, AV)", count, 3 * 2 * 2 * rows * heads * length * length * head_dim, run)


def step_shapes(preset: str, *, rows: int, length: int, vocab: int, mlm_probability: float,
                dtype: torch.dtype) -> list[Shape]:
    """Every matmul of one BERT pretraining step of `rows` sequences of `length` tokens."""
    p = PRESETS[preset]
    tokens, masked = rows * length, max(1, round(rows * length * mlm_probability))
    return [
        linear("Q, K, V, attention output", 4 * p.layers, tokens, p.hidden, p.hidden, dtype),
        linear("feed-forward in", p.layers, tokens, p.hidden, p.intermediate, dtype),
        linear("feed-forward out", p.layers, tokens, p.intermediate, p.hidden, dtype),
        attention(p.layers, rows, p.heads, length, p.hidden // p.heads, dtype),
        linear("MLM transform (masked)", 1, masked, p.hidden, p.hidden, dtype),
        linear("MLM vocabulary (masked)", 1, masked, p.hidden, vocab, dtype),
    ]


def _seconds(run: Callable[[], None]) -> float:
    with Stopwatch() as watch:
        run()
    return watch.wall


def measure(preset: str, *, precision: str = "bf16", rows: int = 32, length: int = 88,
            vocab: int = 32000, mlm_probability: float = 0.15, rounds: int = 12,
            ceiling_n: int = 3072, warmup: int = 2) -> dict:
    """Median time of each shape and of the ceiling, sampled alternately over `rounds`."""
    dtype, p = DTYPES[precision], PRESETS[preset]
    shapes = step_shapes(preset, rows=rows, length=length, vocab=vocab,
                         mlm_probability=mlm_probability, dtype=dtype)
    times: dict[str, list[float]] = {s.name: [] for s in shapes}
    ceilings: list[float] = []
    for round_ in range(warmup + rounds):
        ceiling = matmul_flops_per_second(ceiling_n, repeats=1, dtype=precision)
        spent = {s.name: _seconds(s.run) for s in shapes}
        if round_ >= warmup:  # the first calls pick kernels and allocate
            ceilings.append(ceiling)
            for name, seconds in spent.items():
                times[name].append(seconds)
    ceiling = statistics.median(ceilings)
    rows_out = []
    for s in shapes:
        seconds = statistics.median(times[s.name])
        rows_out.append({"name": s.name, "count": s.count, "flops": s.flops, "seconds": seconds,
                         "flops_per_second": s.flops / seconds, "of_ceiling": s.flops / seconds / ceiling})
    total_flops = sum(r["flops"] * r["count"] for r in rows_out)
    total_seconds = sum(r["seconds"] * r["count"] for r in rows_out)
    for r in rows_out:
        r["share_of_flops"] = r["flops"] * r["count"] / total_flops
    return {"preset": preset, "precision": precision, "rows": rows, "length": length, "vocab": vocab,
            "mlm_probability": mlm_probability, "rounds": rounds, "ceiling_n": ceiling_n,
            "ceiling_flops": ceiling, "shapes": rows_out, "step_matmul_flops": total_flops,
            "step_matmul_seconds": total_seconds,
            "shape_ceiling_of_ceiling": total_flops / total_seconds / ceiling,
            "dims": asdict(Dims(p.layers, p.hidden, p.intermediate, vocab))}


def print_report(result: dict) -> None:
    print(f"{result['preset']}, {result['precision']}, {result['rows']} rows x {result['length']} tokens, "
          f"vocabulary {result['vocab']:,}; ceiling ({result['ceiling_n']}^2 matmul, median of "
          f"{result['rounds']}): {result['ceiling_flops'] / 1e9:.1f} GFLOP/s")
    print(f"{'matmul':28s} {'per step':>8s} {'GFLOP/s':>8s} {'of ceiling':>10s} {'of FLOPs':>9s}")
    for r in result["shapes"]:
        print(f"{r['name']:28s} {r['count']:8d} {r['flops_per_second'] / 1e9:8.1f} "
              f"{r['of_ceiling']:10.1%} {r['share_of_flops']:9.1%}")
    print(f"the step's matmuls together: {result['shape_ceiling_of_ceiling']:.1%} of the ceiling "
          f"({result['step_matmul_seconds'] * 1e3:.1f} ms for {result['step_matmul_flops'] / 1e9:.2f} GFLOP)")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mini", choices=list(PRESETS))
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--rows", type=int, default=32, help="sequences per step (the bench's batch)")
    parser.add_argument("--length", type=int, default=88,
                        help="real tokens per sequence (88: the full pretraining bench's mean)")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--mlm-probability", type=float, default=0.15)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--out", default=None, help="JSON report (default: bench/results/shapes-PRESET-PRECISION.json)")
    args = parser.parse_args(argv)
    result = measure(args.preset, precision=args.precision, rows=args.rows, length=args.length,
                     vocab=args.vocab, mlm_probability=args.mlm_probability, rounds=args.rounds)
    result["machine"] = machine()
    print_report(result)
    out = Path(args.out or Path(__file__).parent / "results" / f"shapes-{args.preset}-{args.precision}.json")
    write_json(out, result)
    print(f"report: {out}")
    return result


if __name__ == "__main__":
    main()
