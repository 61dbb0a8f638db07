"""FLOPs of a BERT pretraining step, counted two ways.

- executed: what the system actually computes: every position of every padded row goes through
  the encoder, attention spans the padded width, and the MLM head runs where the system runs it
  (every position for Hugging Face's BertForPreTraining, masked positions only for hanlm).
- useful: the work the task needs: encoder and attention on real tokens only (attention over
  each sequence's real length) and the MLM head on masked positions only.

A training step is counted as 3x the forward pass (backward = 2x forward), matmuls only
(2 FLOPs per multiply-add); embeddings, LayerNorm, softmax, the pooler and NSP head are left
out (under 1% at these sizes). `useful / time / ceiling` is the "useful MFU" of the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dims:
    layers: int
    hidden: int
    intermediate: int
    vocab: int

    @classmethod
    def of(cls, config) -> Dims:
        return cls(config.num_hidden_layers, config.hidden_size, config.intermediate_size, config.vocab_size)

    def per_token(self) -> float:
        """Forward FLOPs of one token through the encoder, attention excluded (Q, K, V, output
        projections and the feed-forward block)."""
        h = self.hidden
        return self.layers * (2 * 4 * h * h + 2 * 2 * h * self.intermediate)

    def attention(self, length: float) -> float:
        """Forward FLOPs of the attention of one sequence of `length` positions (QK^T and AV)."""
        return self.layers * 2 * 2 * length * length * self.hidden

    def head_per_prediction(self) -> float:
        """Forward FLOPs of the MLM head for one position (transform + vocabulary projection)."""
        return 2 * self.hidden * self.hidden + 2 * self.hidden * self.vocab


def step_flops(dims: Dims, lengths: np.ndarray, masked: int, *, width: int, head_positions: int) -> tuple[float, float]:
    """(executed, useful) training FLOPs of one batch.

    `lengths`: real tokens of each row; `width`: the padded row length the system computed;
    `masked`: predicted positions; `head_positions`: positions the system ran the MLM head on.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    rows = lengths.size
    executed = rows * width * dims.per_token() + rows * dims.attention(width) + head_positions * dims.head_per_prediction()
    useful = lengths.sum() * dims.per_token() + sum(dims.attention(n) for n in lengths) + masked * dims.head_per_prediction()
    return 3 * executed, 3 * useful
