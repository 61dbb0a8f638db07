"""The work around a small model's pretraining step: collation (MLM masking of a batch) and the
MLM accuracy metric, against how hanlm did both before 2026-12-05, in one process, interleaved
round by round so background load hits both alike.

    python -m bench.step_overhead --data DATA_DIR [--batch-size 128] [--rounds 7]

- **collation**: `Collator` now (special tokens by a lookup table; token masking takes the first
  positions of one permutation) against the reference (`np.isin` per row, and the general unit
  loop over single-token units). Both must give identical batches; the bench checks it.
- **MLM accuracy**: the label's logit against `amax` (now) vs `argmax` (before), on the logits of
  that many masked positions and the data's vocabulary.
- **step**: forward + backward + fused AdamW of BERT (`--preset`) on the same batches, for scale:
  the saving is reported as a share of the whole step.

DATA_DIR is a `hanlm data build` output, e.g. a study's `study-work/default/data-review-short`.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.common import Stopwatch, machine, write_json
from hanlm.data.batches import BatchSchedule, Collator, global_batch
from hanlm.data.masking import MaskingConfig, choose_units, prediction_target, word_units
from hanlm.data.shards import ShardReader
from hanlm.model.bert import build_bert_config, new_pretraining_model
from hanlm.tokenizer import KoreanTokenizer


class ReferenceCollator(Collator):
    """hanlm's collation before 2026-12-05: `np.isin` against the special ids, and the general
    unit loop even when every unit is one token."""

    def choose(self, ids, word_starts, rng):
        maskable = ~np.isin(ids, np.flatnonzero(self.is_special))
        n = int(maskable.sum())
        if n == 0:
            return np.empty(0, dtype=np.int64)
        return choose_units(word_units(word_starts, maskable, False),
                            prediction_target(n, self.masking), rng)


def argmax_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(-1) == labels).sum()


def amax_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.gather(1, labels[:, None]).squeeze(1) >= logits.amax(-1)).sum()


def seconds(fn: Callable[[], object], repeats: int) -> float:
    with Stopwatch() as watch:
        for _ in range(repeats):
            fn()
    return watch.wall / repeats


def measure(data: str, *, preset: str, batch_size: int, batches: int, rounds: int) -> dict:
    tok = KoreanTokenizer.load(f"{data}/tokenizer")
    reader = ShardReader(data, "train")
    kwargs = dict(pad_id=tok.pad_id, mask_id=tok.mask_id, special_ids=tok.special_ids,
                  vocab_size=tok.vocab_size, masking=MaskingConfig(), seed=0)
    now, before = Collator(**kwargs), ReferenceCollator(**kwargs)
    indices, _ = global_batch(0, BatchSchedule(micro=batch_size * batches), len(reader), seed=0)
    groups = [indices[k * batch_size : (k + 1) * batch_size] for k in range(batches)]
    samples = [[reader[int(i)] for i in idx] for idx in groups]
    epochs = np.zeros(batch_size, dtype=np.int64)
    collated = [now(s, idx, epochs) for s, idx in zip(samples, groups, strict=True)]
    for s, idx, batch in zip(samples, groups, collated, strict=True):
        reference = before(s, idx, epochs)
        if any(not torch.equal(batch[k], reference[k]) for k in batch):
            raise AssertionError("the collators disagree: the fast path changed the masks")

    model = new_pretraining_model(build_bert_config(preset, vocab_size=tok.vocab_size, dropout=0.0,
                                                    attn_implementation="eager"), seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    masked = int(np.mean([len(b["mlm_labels"]) for b in collated]))
    logits = torch.randn(masked, tok.vocab_size)
    labels = torch.randint(0, tok.vocab_size, (masked,))

    def train_step() -> None:
        for b in collated:
            model(**b).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    tasks = {
        "collate before": lambda: [before(s, i, epochs) for s, i in zip(samples, groups, strict=True)],
        "collate now": lambda: [now(s, i, epochs) for s, i in zip(samples, groups, strict=True)],
        "accuracy argmax (before)": lambda: [argmax_correct(logits, labels) for _ in range(batches)],
        "accuracy amax (now)": lambda: [amax_correct(logits, labels) for _ in range(batches)],
        "model step": train_step,
    }
    for fn in tasks.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, fn in tasks.items():
            times[name].append(seconds(fn, 1) / batches)
    ms = {name: 1000 * statistics.median(t) for name, t in times.items()}
    # The model step computes the accuracy the new way; the old step had argmax instead.
    step_now = ms["model step"] + ms["collate now"]
    step_before = (ms["model step"] - ms["accuracy amax (now)"] + ms["accuracy argmax (before)"]
                   + ms["collate before"])
    return {
        "preset": preset, "batch_size": batch_size, "masked_positions": masked,
        "vocab_size": tok.vocab_size, "rounds": rounds, "batches_per_round": batches,
        "ms_per_batch": ms, "per_round_seconds": times,
        "collate_speedup": ms["collate before"] / ms["collate now"],
        "accuracy_speedup": ms["accuracy argmax (before)"] / ms["accuracy amax (now)"],
        "step_speedup": step_before / step_now,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a `hanlm data build` output")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=4, help="batches per task per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="bench/results/step_overhead.json")
    args = parser.parse_args(argv)
    result = measure(args.data, preset=args.preset, batch_size=args.batch_size,
                     batches=args.batches, rounds=args.rounds)
    print(f"{args.preset}, {args.batch_size} rows a batch, {result['masked_positions']} masked "
          f"positions, vocabulary {result['vocab_size']}, median of {args.rounds} interleaved rounds")
    for name, value in result["ms_per_batch"].items():
        print(f"  {name:<28} {value:8.2f} ms per batch")
    print(f"  collation x{result['collate_speedup']:.2f}, accuracy x{result['accuracy_speedup']:.1f}, "
          f"whole step (model + collation + accuracy) x{result['step_speedup']:.3f}")
    write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
