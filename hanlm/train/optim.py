"""AdamW with BERT's weight-decay exclusions, and a warm-up + decay schedule that follows the
run's progress in steps or, under a time budget, in time."""

from __future__ import annotations

import math

import torch
from torch import nn

from hanlm.train.config import OptimConfig


def peak_lr(cfg: OptimConfig) -> float:
    """`cfg.lr`, which must be set by now: None (pretraining's "by model size") is resolved by
    `hanlm.train.pretrain` before it builds the optimizer, so None here is a caller's bug."""
    if cfg.lr is None:
        raise ValueError("OptimConfig.lr is unset: give a learning rate (hanlm pretrain sets "
                         "the model size's, hanlm.train.config.default_lr)")
    return cfg.lr


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        # BERT (Devlin et al. 2019, run_pretraining.py) excludes LayerNorm and bias from decay.
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # fused=True: one kernel per tensor for the whole update. On 2 CPU cores it took the AdamW
    # step of a BERT-mini (11M parameters, 8.2M in the embedding) from 0.45 s (foreach: one pass
    # per elementwise op) to 0.055 s, measured interleaved in one process (docs/BENCHMARKS.md);
    # CUDA has the same kernel.
    return torch.optim.AdamW(
        groups, lr=peak_lr(cfg), betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=True
    )


def warmup_steps(cfg: OptimConfig, total_steps: int) -> int:
    if cfg.warmup_steps is not None:
        return cfg.warmup_steps
    return int(round(cfg.warmup_ratio * total_steps))


def lr_factor(step: float, *, warmup: int, total: int, schedule: str) -> float:
    """Multiplier of the peak LR at optimizer step `step` (0-based)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return max(0.0, 1.0 - progress)


class Schedule:
    """The learning rate of every optimizer step.

    Progress is counted in optimizer steps; with a time budget it is the larger of the steps
    done and the share of the budget spent (as cramming and "24h BERT" schedule), so a run that
    the budget stops has warmed up and annealed over the time it had instead of being cut off
    mid-schedule. The rate is a pure function of (step, elapsed seconds), both of which the
    checkpoint holds, so a resumed run continues the same curve.
    """

    def __init__(self, cfg: OptimConfig, total_steps: int, budget_seconds: float | None = None):
        self.cfg, self.total, self.peak = cfg, total_steps, peak_lr(cfg)
        self.warmup = warmup_steps(cfg, total_steps)
        self.budget = budget_seconds

    def progress_step(self, step: int, elapsed: float = 0.0) -> float:
        """The step the schedule is at: `step`, or further on when time runs faster."""
        if not self.budget:
            return step
        return max(step, self.total * min(1.0, elapsed / self.budget))

    def lr(self, step: int, elapsed: float = 0.0) -> float:
        factor = lr_factor(self.progress_step(step, elapsed), warmup=self.warmup,
                           total=self.total, schedule=self.cfg.schedule)
        return self.peak * factor

    def apply(self, optimizer: torch.optim.Optimizer, step: int, elapsed: float = 0.0) -> float:
        """Set the rate of optimizer step `step` (0-based) on every parameter group."""
        lr = self.lr(step, elapsed)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
