"""Batches for pretraining: a resumable sample order and dynamic masking at collate time.

The order is a pure function of (seed, step): epoch e visits the train instances in the
permutation drawn from (seed, e), and optimizer step s consumes the next G(s) global positions
of the endless concatenation of epochs (G(s) = the global batch of step s, constant after an
optional batch-size ramp: `BatchSchedule`). A run resumed at
step s therefore reads exactly what it would have read, in seconds, without replaying the data.
Each global batch is cut into micro-batches: micro-batch k of a step goes to process
k % world_size, so N processes with accumulation A see the same samples as 1 process with
accumulation N*A.

Length buckets (`bucket_steps` > 1): the samples of `bucket_steps` consecutive steps are sorted by
length, cut into that many global batches, and those batches are visited in a random order
(drawn from seed and window). Every sample is still seen once per epoch, the order is still a
pure function of (seed, step), and a batch is padded only to its own longest row: on the NSMC
reviews (many one-review movies, so 55% of instances are shorter than max_len) padding drops
from ~30% of the computed positions to ~1% (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from hanlm.data.masking import MaskingConfig, apply_mask, choose_positions, sample_rng
from hanlm.data.shards import Sample, ShardReader


@lru_cache(maxsize=4)
def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng((seed, epoch)).permutation(n)


@dataclass(frozen=True)
class BatchSchedule:
    """How many sequences each optimizer step takes: ``micro`` per micro-batch, ``accum``
    micro-batches per process, ``world`` processes; during the first ``ramp_steps`` steps the
    micro-batch grows linearly from ``ramp_start`` sequences to ``micro`` (a batch-size ramp, as
    GPT-3 and cramming train: small batches while the loss falls fast, more optimizer steps
    per token seen).
    """

    micro: int
    accum: int = 1
    world: int = 1
    ramp_steps: int = 0
    ramp_start: int = 1

    def micro_at(self, step: int) -> int:
        """Sequences per micro-batch at optimizer step ``step`` (0-based)."""
        if step >= self.ramp_steps:
            return self.micro
        start = min(self.ramp_start, self.micro)
        return start + (self.micro - start) * step // self.ramp_steps

    def size(self, step: int) -> int:
        """Sequences of the whole (global) batch of ``step``."""
        return self.micro_at(step) * self.accum * self.world

    def start(self, step: int) -> int:
        """Sequences taken by the steps before ``step``: where its batch starts in the stream."""
        ramped = min(step, self.ramp_steps)
        before = sum(self.micro_at(s) for s in range(ramped)) if ramped else 0
        return (before + (step - ramped) * self.micro) * self.accum * self.world


def global_batch(step: int, schedule: BatchSchedule, n: int, seed: int, *,
                 lengths: np.ndarray | None = None, bucket_steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(instance indices, epochs) of optimizer step `step`; with `lengths` and `bucket_steps` > 1,
    length-bucketed (see the module docstring)."""
    if lengths is None or bucket_steps <= 1:
        return _positions(schedule.start(step), schedule.size(step), n, seed)
    window = step // bucket_steps
    first = window * bucket_steps
    sizes = np.array([schedule.size(s) for s in range(first, first + bucket_steps)])
    indices, epochs = _positions(schedule.start(first), int(sizes.sum()), n, seed)
    by_length = np.argsort(lengths[indices], kind="stable")
    # Step first + j takes the visit[j]-th run of the length-sorted window, as long as its batch.
    visit = np.random.default_rng((seed, window, 1)).permutation(bucket_steps)
    run_sizes = np.empty(bucket_steps, dtype=np.int64)
    run_sizes[visit] = sizes
    ends = np.cumsum(run_sizes)
    run = visit[step - first]
    chosen = by_length[ends[run] - run_sizes[run] : ends[run]]
    return indices[chosen], epochs[chosen]


def _positions(start: int, size: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(instance indices, epochs) of global positions [start, start + size)."""
    positions = np.arange(start, start + size, dtype=np.int64)
    epochs = positions // n
    indices = np.empty(size, dtype=np.int64)
    for e in np.unique(epochs):
        sel = epochs == e
        indices[sel] = epoch_order(seed, int(e), n)[positions[sel] % n]
    return indices, epochs


def micro_batches(step: int, schedule: BatchSchedule, *, rank: int, n: int, seed: int,
                  lengths: np.ndarray | None = None, bucket_steps: int = 1):
    """The `schedule.accum` micro-batches (indices, epochs) that process `rank` runs at `step`."""
    indices, epochs = global_batch(step, schedule, n, seed, lengths=lengths, bucket_steps=bucket_steps)
    micro = schedule.micro_at(step)
    for a in range(schedule.accum):
        k = a * schedule.world + rank
        yield indices[k * micro : (k + 1) * micro], epochs[k * micro : (k + 1) * micro]


def sample_lengths(reader: ShardReader) -> np.ndarray:
    """Tokens of every instance of a split, in index order (for length buckets)."""
    if not reader.shards:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.diff(np.asarray(s["offsets"])) for s in reader.shards])


class Collator:
    """Samples -> padded tensors with dynamic MLM masking (a new mask every epoch)."""

    def __init__(self, *, pad_id: int, mask_id: int, special_ids: set[int], vocab_size: int,
                 masking: MaskingConfig, seed: int):
        self.pad_id = pad_id
        self.mask_id = mask_id
        special = np.array(sorted(special_ids), dtype=np.int64)
        self.random_ids = np.setdiff1d(np.arange(vocab_size), special)
        # A lookup table, not np.isin: isin sorts on every call, a third of the per-row cost.
        self.is_special = np.zeros(max(vocab_size, int(special.max(initial=-1)) + 1), dtype=bool)
        self.is_special[special] = True
        self.masking = masking
        self.seed = seed

    def choose(self, ids: np.ndarray, word_starts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The positions of one sequence to predict."""
        return choose_positions(word_starts, ~self.is_special[ids], rng, self.masking)

    def __call__(self, samples: list[Sample], indices: np.ndarray, epochs: np.ndarray) -> dict[str, torch.Tensor]:
        width = max(s.input_ids.size for s in samples)
        batch = len(samples)
        input_ids = np.full((batch, width), self.pad_id, dtype=np.int64)
        token_types = np.zeros((batch, width), dtype=np.int64)
        attention = np.zeros((batch, width), dtype=np.int64)
        positions, labels = [], []
        for row, (sample, index, epoch) in enumerate(zip(samples, indices, epochs, strict=True)):
            ids = sample.input_ids
            rng = sample_rng(self.seed, int(index), int(epoch))
            chosen = self.choose(ids, sample.word_starts, rng)
            corrupted, target = apply_mask(
                ids, chosen, rng, mask_id=self.mask_id, random_ids=self.random_ids, cfg=self.masking
            )
            input_ids[row, : ids.size] = corrupted
            token_types[row, sample.len_a : ids.size] = 1
            attention[row, : ids.size] = 1
            positions.append(chosen + row * width)
            labels.append(target)
        return {
            "input_ids": torch.from_numpy(input_ids),
            "token_type_ids": torch.from_numpy(token_types),
            "attention_mask": torch.from_numpy(attention),
            "mlm_positions": torch.from_numpy(np.concatenate(positions)),
            "mlm_labels": torch.from_numpy(np.concatenate(labels).astype(np.int64)),
            "nsp_labels": torch.tensor([s.nsp_label for s in samples], dtype=torch.long),
        }
