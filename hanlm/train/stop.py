"""Stopping a training loop cleanly: on a signal, or when every process agrees.

Both loops (`hanlm pretrain`, the fine-tuning loop) check at the end of each optimizer step
whether to stop; they then save a checkpoint of that step and exit.
"""

from __future__ import annotations

import logging
import signal

import torch

logger = logging.getLogger(__name__)


class StopRequested:
    """SIGINT/SIGTERM set a flag; the loop checkpoints and exits at the end of the step.

    Inside the ``with`` block the first signal sets `signal` (its number) instead of raising;
    a second one raises KeyboardInterrupt at once. The previous handlers return on exit.
    """

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum
        logger.warning("signal %d: finishing this step, saving a checkpoint, then exiting", signum)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def all_agree(accelerator, flag: bool) -> bool:
    """True on every process if `flag` is true on any.

    A signal or a time limit may reach one process and not the others. Every process must
    stop at the same step: saving a checkpoint and every later step are collective operations
    (gradient all-reduce, barriers), and a process that stopped alone would leave the others
    waiting for it forever. So this reduction runs on every process at every step.
    """
    return all_agree_each(accelerator, flag)[0]


def all_agree_each(accelerator, *flags: bool) -> tuple[bool, ...]:
    """`all_agree` of each flag, in one reduction: a loop that checks several conditions at
    every step pays for one collective, not one per condition. One process: no reduction."""
    if accelerator.num_processes == 1:
        return tuple(bool(f) for f in flags)
    value = torch.tensor([1.0 if f else 0.0 for f in flags], device=accelerator.device)
    return tuple(v > 0 for v in accelerator.reduce(value, reduction="sum").tolist())
