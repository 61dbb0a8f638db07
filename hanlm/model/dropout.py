"""Dropout with a cheaper mask on a CPU.

On a CPU `torch.nn.Dropout` draws one Bernoulli sample per element (`bernoulli_`), and at
BERT-mini's size that draw was a seventh of a fine-tuning step's operator time, as much in a
Hugging Face `Trainer` as in hanlm (docs/BENCHMARKS.md, "Where a fine-tuning step goes").
`CpuDropout` draws 64 random bits per four elements instead and keeps an element when its 16
bits are at or above `p` x 65,536: the same Bernoulli distribution, with the drop probability
rounded to a multiple of 1/65,536 (0.1 becomes 0.100006; the kept values are scaled by the
inverse of that exact keep probability, so the expectation is unchanged). Only the random
stream differs from PyTorch's; like PyTorch's, it comes from the seeded default generator, so a
run and its resume draw the same masks. What it gains in a step: docs/BENCHMARKS.md, "Where a
fine-tuning step goes".

On other devices, in evaluation, and at p = 0 it is `nn.Dropout` itself (GPU dropout is a
fused kernel already). It subclasses `nn.Dropout`, so code that reads or sets `.p` is
unaffected, and it holds no weights, so a model saved with it is a stock model.
"""

from __future__ import annotations

import torch
from torch import nn

_LEVELS = 1 << 16  # 16 bits of randomness per element


def drop_threshold(p: float) -> int:
    """How many of the 65,536 values of a 16-bit draw drop an element (p rounded)."""
    return round(p * _LEVELS)


def keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """A bool mask shaped like `x`: False for the elements dropped at rate `p`."""
    n = x.numel()
    # Over the whole int64 range: `random_()` with no bounds leaves the sign bit 0, which would
    # make every fourth 16-bit value non-negative.
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device)
    bits.random_(-(1 << 63), (1 << 63) - 1)
    # Each draw read as four signed 16-bit values, uniform on [-32768, 32767].
    draws = bits.view(torch.int16)[:n].view(x.shape)
    return draws >= drop_threshold(p) - _LEVELS // 2


def keep_scale(p: float) -> float:
    """1 / the exact keep probability of `keep_mask` at rate `p`."""
    return _LEVELS / (_LEVELS - drop_threshold(p))


class CpuDropout(nn.Dropout):
    """`nn.Dropout` whose mask, on a CPU, costs 16 random bits an element (module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Rates that 16 bits cannot tell from 0 or 1 (and 0 and 1 themselves) go to PyTorch's.
        rounded_away = not 0 < drop_threshold(self.p) < _LEVELS
        if not self.training or rounded_away or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        # A bool mask, then the scale as a scalar: a bf16 result is rounded once per element, as
        # PyTorch's dropout rounds it, and autograd keeps only the one-byte mask for the backward.
        return x.mul(keep_mask(x, self.p)).mul_(keep_scale(self.p))


def use_cpu_dropout(model: nn.Module) -> int:
    """Replace every `nn.Dropout` of `model` with a `CpuDropout` of the same rate; returns how
    many were replaced."""
    swaps = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children() if type(child) is nn.Dropout]
    for parent, name, child in swaps:
        setattr(parent, name, CpuDropout(child.p).train(child.training))
    return len(swaps)
