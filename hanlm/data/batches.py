"""Batches for pretraining: a resumable sample order and dynamic masking at collate time.

The order is a pure function of (seed, step): epoch e visits the train instances in the
permutation drawn from (seed, e), and optimizer step s consumes global positions
[s*G, (s+1)*G) of the endless concatenation of epochs (G = the global batch). A run resumed at
step s therefore reads exactly what it would have read, in seconds, without replaying the data.
Each global batch is cut into micro-batches: micro-batch k of a step goes to process
k % world_size, so N processes with accumulation A see the same samples as 1 process with
accumulation N*A.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from hanlm.data.masking import MaskingConfig, apply_mask, choose_positions, sample_rng
from hanlm.data.shards import Sample


@lru_cache(maxsize=4)
def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng((seed, epoch)).permutation(n)


def global_batch(step: int, size: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(instance indices, epochs) of optimizer step `step`."""
    positions = np.arange(step * size, (step + 1) * size, dtype=np.int64)
    epochs = positions // n
    indices = np.empty(size, dtype=np.int64)
    for e in np.unique(epochs):
        sel = epochs == e
        indices[sel] = epoch_order(seed, int(e), n)[positions[sel] % n]
    return indices, epochs


def micro_batches(step: int, *, micro: int, accum: int, world: int, rank: int, n: int, seed: int):
    """The `accum` micro-batches (indices, epochs) that process `rank` runs at `step`."""
    indices, epochs = global_batch(step, micro * accum * world, n, seed)
    for a in range(accum):
        k = a * world + rank
        yield indices[k * micro : (k + 1) * micro], epochs[k * micro : (k + 1) * micro]


class Collator:
    """Samples -> padded tensors with dynamic MLM masking (a new mask every epoch)."""

    def __init__(self, *, pad_id: int, mask_id: int, special_ids: set[int], vocab_size: int,
                 masking: MaskingConfig, seed: int):
        self.pad_id = pad_id
        self.mask_id = mask_id
        self.special = np.array(sorted(special_ids), dtype=np.int64)
        self.random_ids = np.setdiff1d(np.arange(vocab_size), self.special)
        self.masking = masking
        self.seed = seed

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
            maskable = ~np.isin(ids, self.special)
            chosen = choose_positions(sample.word_starts, maskable, rng, self.masking)
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
