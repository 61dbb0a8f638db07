"""bf16 training with the weights held in bf16 and fp32 master weights in the optimizer.

Under autocast every matmul casts its fp32 weight and its input to bf16 and the element-wise work
around it runs on fp32 tensors: on a CPU at BERT-mini's width those casts were 15.5% of a step's
operator time, and the fp32 activations double the memory traffic of everything that is not a
matmul (docs/BENCHMARKS.md, "Levers"). Here a bf16 copy of the model runs forward and backward
without autocast, so activations stay bf16 end to end; the fp32 model stays what the optimizer
updates, what checkpoints save and what evaluation and export read (small updates are not
rounded away: the reason mixed precision keeps fp32 masters, as Megatron-LM's bf16 mode does).
After each micro-batch the copy's gradients are added to the masters' in fp32, and after the
optimizer step the masters are cast back into the copy: two passes over the parameters a step
instead of casts at every op. The models take their losses in fp32 (`hanlm.model`); PyTorch's
bf16 LayerNorm and softmax kernels accumulate in fp32.

Neither Accelerate nor PyTorch offers this for a model on a CPU (Accelerate's bf16 is autocast;
`model.to(torch.bfloat16)` alone would lose the fp32 masters), hence this small class.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class Bf16Weights:
    """A bf16 copy of `master` for forward and backward; `master` keeps the fp32 weights."""

    def __init__(self, master: nn.Module):
        self.master = master
        self.module = copy.deepcopy(master).to(torch.bfloat16)
        # deepcopy keeps tied weights tied, so both lists name each shared tensor once, in order.
        self._master_params = [p for p in master.parameters() if p.requires_grad]
        self._params = [p for p in self.module.parameters() if p.requires_grad]

    def train(self, mode: bool) -> nn.Module:
        """The copy in `master`'s mode (the loops switch it for evaluation)."""
        return self.module.train(mode)

    def grads_to_master(self) -> None:
        """Add the copy's gradients, in fp32, to the masters' and clear the copy's: called after
        each micro-batch, so gradient accumulation sums in fp32."""
        for param, master in zip(self._params, self._master_params, strict=True):
            if param.grad is None:
                continue
            if master.grad is None:
                master.grad = param.grad.float()
            else:
                master.grad.add_(param.grad)
            param.grad = None

    @torch.no_grad()
    def refresh(self) -> None:
        """Cast the masters into the copy, after the optimizer changed them."""
        torch._foreach_copy_(self._params, self._master_params)
