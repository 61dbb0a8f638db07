"""One lever at a time: hanlm's training step with one setting changed, against the step as it
was before this benchmark (SDPA, dropout 0.1, AdamW foreach, batches padded to their longest
row), all in one process, interleaved round-robin so background load hits every variant alike.

    python -m bench.levers --data DATA_DIR --preset mini [--rounds 4]

Reports real tokens/s of each variant as a ratio to the reference (median over rounds, wall
clock and process CPU time). DATA_DIR is a `hanlm data build` output (bench/pretrain.py leaves
one in its work directory).
"""

from __future__ import annotations

import argparse
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers.models.bert import modeling_bert

from bench.common import Stopwatch, machine, print_profile_groups, summarize_profile, write_json
from hanlm.data.batches import BatchSchedule, Collator, global_batch
from hanlm.data.masking import MaskingConfig
from hanlm.data.shards import ShardReader
from hanlm.model.bert import build_bert_config, new_pretraining_model
from hanlm.model.dropout import use_cpu_dropout
from hanlm.tokenizer import KoreanTokenizer
from hanlm.train.bf16_weights import Bf16Weights
from hanlm.train.optim import OptimConfig, build_optimizer
from hanlm.train.precision import autocast

logger = logging.getLogger(__name__)


@dataclass
class Variant:
    name: str
    attn: str = "sdpa"
    dropout: float = 0.1
    compile: bool = False
    fused_adamw: bool = False
    batches: str = "random"  # random | bucketed | full (every row 128 tokens: no padding)
    # fp32: weights in fp32, cast by autocast at every op; bf16: hanlm's bf16 copy of the model
    # run without autocast, AdamW on the fp32 weights (`--bf16-weights`)
    weights: str = "fp32"
    fused_qkv: bool = False  # Q, K and V of each layer as one hidden -> 3 x hidden linear
    cpu_dropout: bool = False  # hanlm's CpuDropout (`hanlm.model.dropout`) instead of nn.Dropout
    model_kwargs: dict = field(default_factory=dict)


VARIANTS = [
    Variant("reference (sdpa, dropout 0.1, random batches)"),
    Variant("eager attention", attn="eager"),
    Variant("dropout 0", dropout=0.0),
    Variant("length-bucketed batches", batches="bucketed"),
    Variant("fused AdamW", fused_adamw=True),
    Variant("torch.compile", compile=True),
    Variant("full rows, sdpa (no mask)", batches="full"),
    Variant("full rows, eager", batches="full", attn="eager"),
    Variant("all levers: bucketed, dropout 0", batches="bucketed", dropout=0.0),
    Variant("hanlm now: eager, bucketed, fused AdamW", attn="eager", batches="bucketed",
            fused_adamw=True),
    Variant("hanlm now + torch.compile", attn="eager", batches="bucketed", fused_adamw=True,
            compile=True),
    Variant("hanlm defaults: eager, bucketed, fused AdamW, dropout 0", attn="eager",
            batches="bucketed", fused_adamw=True, dropout=0.0),
    Variant("hanlm defaults + torch.compile", attn="eager", batches="bucketed", fused_adamw=True,
            dropout=0.0, compile=True),
    Variant("hanlm defaults, SDPA attention", batches="bucketed", fused_adamw=True, dropout=0.0),
    Variant("hanlm defaults, bf16 weights + fp32 masters", attn="eager", batches="bucketed",
            fused_adamw=True, dropout=0.0, weights="bf16"),
    Variant("hanlm defaults, bf16 weights, fused QKV", attn="eager", batches="bucketed",
            fused_adamw=True, dropout=0.0, weights="bf16", fused_qkv=True),
    Variant("bf16 weights, dropout 0.1, PyTorch's", attn="eager", batches="bucketed",
            fused_adamw=True, weights="bf16"),
    Variant("bf16 weights, dropout 0.1, hanlm's CPU dropout", attn="eager", batches="bucketed",
            fused_adamw=True, weights="bf16", cpu_dropout=True),
]


class FusedQKVSelfAttention(modeling_bert.BertSelfAttention):
    """The stock self-attention with its query, key and value projections as one linear layer
    (one 3 x wider matmul per layer instead of three; the same weights, stacked). Written for
    this bench only: hanlm's models keep the stock module, whose three weights export relies on;
    the bench measures whether fusing them would pay. An encoder's: no key/value cache."""

    def __init__(self, stock: modeling_bert.BertSelfAttention):
        super().__init__(stock.config, is_causal=stock.is_causal, layer_idx=stock.layer_idx)
        del self.query, self.key, self.value
        parts = (stock.query, stock.key, stock.value)
        self.qkv = torch.nn.Linear(stock.query.in_features, 3 * stock.all_head_size)
        with torch.no_grad():
            self.qkv.weight.copy_(torch.cat([p.weight for p in parts]))
            self.qkv.bias.copy_(torch.cat([p.bias for p in parts]))

    def forward(self, hidden_states, attention_mask=None, cache=None, **kwargs):
        if cache is not None:
            raise ValueError("the fused-QKV bench module is an encoder's: it keeps no key/value cache")
        input_shape = hidden_states.shape[:-1]
        heads = (*input_shape, -1, self.attention_head_size)
        query, key, value = (part.view(*heads).transpose(1, 2)
                             for part in self.qkv(hidden_states).split(self.all_head_size, dim=-1))
        attend = modeling_bert.ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, modeling_bert.eager_attention_forward)
        out, weights = attend(self, query, key, value, attention_mask,
                              dropout=self.dropout.p if self.training else 0.0, scaling=self.scaling, **kwargs)
        return out.reshape(*input_shape, -1).contiguous(), weights


def fuse_qkv(model: torch.nn.Module) -> torch.nn.Module:
    """Every BERT self-attention of `model` replaced by its fused-QKV equivalent, in place."""
    for module in list(model.modules()):
        if isinstance(getattr(module, "self", None), modeling_bert.BertSelfAttention):
            module.self = FusedQKVSelfAttention(module.self)
    return model


def make_batches(data: str, kind: str, *, batch_size: int, count: int, seed: int = 42) -> list[dict]:
    """`count` collated batches: as the loop draws them (random), the same samples sorted by
    length before cutting (bucketed), or only full-length rows (full)."""
    tok = KoreanTokenizer.load(f"{data}/tokenizer")
    reader = ShardReader(data, "train")
    collate = Collator(pad_id=tok.pad_id, mask_id=tok.mask_id, special_ids=tok.special_ids,
                       vocab_size=tok.vocab_size, masking=MaskingConfig(), seed=seed)
    if kind == "full":
        lengths = np.array([len(reader[i].input_ids) for i in range(min(len(reader), 50 * batch_size * count))])
        indices = np.flatnonzero(lengths == lengths.max())[: batch_size * count]
    else:
        indices, _ = global_batch(0, BatchSchedule(micro=batch_size * count), len(reader), seed)
        if kind == "bucketed":
            indices = np.array(sorted(indices, key=lambda i: len(reader[int(i)].input_ids)))
    out = []
    for k in range(count):
        idx = indices[k * batch_size : (k + 1) * batch_size]
        out.append(collate([reader[int(i)] for i in idx], idx, np.zeros(len(idx), dtype=np.int64)))
    return out


def make_step(variant: Variant, preset: str, vocab_size: int, precision: str = "fp32"
              ) -> Callable[[dict], None]:
    config = build_bert_config(preset, vocab_size=vocab_size, dropout=variant.dropout,
                               attn_implementation=variant.attn)
    model = new_pretraining_model(config, seed=0)
    if variant.fused_qkv:
        fuse_qkv(model)
    if variant.cpu_dropout:
        use_cpu_dropout(model)
    model.train()
    if variant.weights == "bf16":
        return _bf16_weights_step(model, variant.compile)
    if variant.fused_adamw:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    else:
        optimizer = build_optimizer(model, OptimConfig(lr=5e-4))  # the rate does not change a step's time
    forward = torch.compile(model, dynamic=True) if variant.compile else model

    def step(batch: dict) -> None:
        with autocast(precision, torch.device("cpu")):
            out = forward(**batch)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _bf16_weights_step(model: torch.nn.Module, compile_it: bool) -> Callable[[dict], None]:
    """hanlm's bf16-weights step (`hanlm.train.bf16_weights`, as `hanlm pretrain` runs it):
    forward and backward on a bf16 copy without autocast, fused AdamW on the fp32 model."""
    copy = Bf16Weights(model)
    forward = torch.compile(copy.module, dynamic=True) if compile_it else copy.module
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step(batch: dict) -> None:
        forward(**batch).loss.backward()
        copy.grads_to_master()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        copy.refresh()

    return step


def measure(data: str, preset: str, variants: list[Variant], *, batch_size: int, rounds: int,
            batches_per_round: int = 2, precision: str = "fp32") -> list[dict]:
    tok = KoreanTokenizer.load(f"{data}/tokenizer")
    batches = {kind: make_batches(data, kind, batch_size=batch_size, count=batches_per_round)
               for kind in {v.batches for v in variants}}
    steps = [make_step(v, preset, tok.vocab_size, precision) for v in variants]
    for v, step in zip(variants, steps, strict=True):  # warm-up (and compile)
        step(batches[v.batches][0])
    wall: list[list[float]] = [[] for _ in variants]
    cpu: list[list[float]] = [[] for _ in variants]
    for _ in range(rounds):
        for k, (v, step) in enumerate(zip(variants, steps, strict=True)):
            tokens = sum(int(b["attention_mask"].sum()) for b in batches[v.batches])
            with Stopwatch() as watch:
                for b in batches[v.batches]:
                    step(b)
            wall[k].append(tokens / watch.wall)
            cpu[k].append(tokens / watch.cpu)
    ref_wall, ref_cpu = statistics.median(wall[0]), statistics.median(cpu[0])
    rows = []
    for k, v in enumerate(variants):
        rows.append({
            "variant": v.name,
            "tokens_per_second": statistics.median(wall[k]),
            "speedup_wall": statistics.median(wall[k]) / ref_wall,
            "speedup_cpu_time": statistics.median(cpu[k]) / ref_cpu,
            "per_round_wall": wall[k],
        })
    return rows


def profile(data: str, preset: str, variants: list[Variant], *, batch_size: int,
            batches_per_round: int = 2, precision: str = "fp32") -> dict[str, dict]:
    """Each variant's steps over the round's batches, after a warm-up step, under the torch
    profiler: self-CPU time by operator group (`bench.common.PROFILE_GROUPS`)."""
    tok = KoreanTokenizer.load(f"{data}/tokenizer")
    batches = {kind: make_batches(data, kind, batch_size=batch_size, count=batches_per_round)
               for kind in {v.batches for v in variants}}
    out = {}
    for v in variants:
        step = make_step(v, preset, tok.vocab_size, precision)
        step(batches[v.batches][0])
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            with Stopwatch() as watch:
                for b in batches[v.batches]:
                    step(b)
        out[v.name] = summarize_profile(prof, watch.wall)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batches", type=int, default=2, help="batches per variant per round")
    parser.add_argument("--only", nargs="*", help="variant names (substrings) to keep besides the reference")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="every variant's forward under this autocast (as `hanlm pretrain "
                        "--precision` runs it)")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the timed comparison: each variant's steps under the torch "
                        "profiler, self-CPU time by operator group")
    parser.add_argument("--out", default=None, help="write the rows (or the profiles) as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    variants = VARIANTS if not args.only else [VARIANTS[0]] + [
        v for v in VARIANTS[1:] if any(s in v.name for s in args.only)]
    if args.profile:
        result: dict = {"profiles": profile(args.data, args.preset, variants, batch_size=args.batch_size,
                                            batches_per_round=args.batches, precision=args.precision)}
        for name, prof in result["profiles"].items():
            print(f"\n== {name} ({args.precision}): {prof['operator_self_cpu_seconds']:.2f} s of operators "
                  f"in {prof['wall_seconds']:.2f} s wall")
            print_profile_groups(prof)
    else:
        result = {"rows": measure(args.data, args.preset, variants, batch_size=args.batch_size,
                                  rounds=args.rounds, batches_per_round=args.batches,
                                  precision=args.precision)}
        print(f"{args.preset}, batch {args.batch_size}, {args.precision}, {args.rounds} interleaved rounds; "
              f"{machine()}")
        for r in result["rows"]:
            print(f"  {r['variant']:<40} {r['tokens_per_second']:8.0f} real tok/s   x{r['speedup_wall']:.2f} wall"
                  f"   x{r['speedup_cpu_time']:.2f} cpu-time")
    if args.out:
        write_json(Path(args.out), {"preset": args.preset, "precision": args.precision, "machine": machine(),
                                    **result})


if __name__ == "__main__":
    main()
