"""The parts of a training step both loops share, so `hanlm pretrain` and `hanlm finetune`
read the same flags the same way: the device and precision, the run directory, accumulation,
the optimizer step with its non-finite guard, the time budget and the hooks.

Each loop stays one readable function of its own (hanlm/train/pretrain.py,
hanlm/tasks/loop.py); what is here is what they would otherwise both spell out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hanlm.errors import HanlmError
from hanlm.model.dropout import CpuDropout, use_cpu_dropout
from hanlm.train.bf16_weights import Bf16Weights
from hanlm.train.checkpoint import saved_precision
from hanlm.train.config import TrainingConfig
from hanlm.train.optim import Schedule
from hanlm.train.precision import autocast, decide_precision, require_device_for

logger = logging.getLogger(__name__)


@dataclass
class Hooks:
    """Calls a loop makes into code that watches it (benchmarks, tests, a study).

    `on_step(step, model)`: before the first step and after every optimizer step, with the
    unwrapped model. `now`: the clock the time budget and the schedule read (a test passes a
    fake one to make a time-budgeted run reproducible).
    """

    on_step: Callable[[int, nn.Module], None] | None = None
    now: Callable[[], float] = field(default=time.perf_counter)

    def step(self, step: int, model: nn.Module) -> None:
        if self.on_step is not None:
            self.on_step(step, model)


class Clock:
    """Seconds of training, summed over the runs a checkpoint chain went through."""

    def __init__(self, now: Callable[[], float], before: float = 0.0):
        self._now, self.before, self._start = now, before, now()

    def elapsed(self) -> float:
        return self.before + self._now() - self._start


class Runtime:
    """The Accelerator of a run and the precision it computes in.

    bf16 is applied with torch.autocast here rather than through Accelerate's mixed_precision:
    Accelerate keeps one precision per process, and a study or a test suite runs pretraining
    and fine-tuning in several precisions in one process. fp16 (GPU only) needs Accelerate's
    loss scaling, so it goes through Accelerate. With --bf16-weights (bf16 on a CPU, one
    process) forward and backward run on a bf16 copy of the model instead of under autocast,
    the optimizer on the fp32 model (`hanlm.train.bf16_weights`).
    """

    def __init__(self, training: TrainingConfig, hidden_size: int, *,
                 resume_dir: Path | None = None):
        """`resume_dir`: the run directory when resuming; `--precision auto` then keeps the
        precision its checkpoints record."""
        from accelerate import Accelerator

        if training.threads:
            torch.set_num_threads(training.threads)
        resumed = saved_precision(resume_dir) if resume_dir is not None else None
        self.choice = decide_precision(training.precision, hidden_size, resumed=resumed)
        require_device_for(self.choice.precision,
                           torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        # cpu=True is what makes Accelerate set up gloo under torchrun on machines without a GPU.
        self.accelerator = Accelerator(
            mixed_precision="fp16" if self.choice.precision == "fp16" else "no",
            cpu=not torch.cuda.is_available())
        self.bf16_weights = _use_bf16_weights(training, self.choice.precision, self.accelerator)
        self._copy: Bf16Weights | None = None

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def autocast(self):
        if self.choice.precision == "bf16":
            return autocast("bf16", self.device)
        return self.accelerator.autocast()

    def prepare(self, model: nn.Module, optimizer: torch.optim.Optimizer
                ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """`model` and `optimizer` prepared by Accelerate; on a CPU the model's dropout first
        draws its masks from 16 random bits an element (`hanlm.model.dropout`)."""
        if self.device.type == "cpu":
            use_cpu_dropout(model)
            rates = sorted({m.p for m in model.modules() if isinstance(m, CpuDropout) and m.p})
            if rates:
                logger.info("dropout %s: masks from 16 random bits an element on the CPU",
                            ", ".join(f"{p:g}" for p in rates))
        return self.accelerator.prepare(model, optimizer)

    def _compute_model(self, model: nn.Module) -> nn.Module:
        """What runs forward and backward: `model`, or its bf16 copy (made from the weights
        `model` holds at the first step, so after a checkpoint was restored into it)."""
        if not self.bf16_weights:
            return model
        if self._copy is None or self._copy.master is not model:
            self._copy = Bf16Weights(model)
        return self._copy.train(model.training)

    def forward_backward(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]],
                         grad_accum: int) -> Iterator[tuple[Any, dict[str, torch.Tensor]]]:
        """Forward and backward each micro-batch of one optimizer step, the loss scaled by
        1/grad_accum; gradients are all-reduced only on the last micro-batch (and with bf16
        weights summed into the fp32 model's). Yields each output with its batch (on the
        device)."""
        compute = self._compute_model(model)
        for k, batch in enumerate(batches):
            batch = {key: v.to(self.device) for key, v in batch.items()}
            sync = (contextlib.nullcontext() if k == grad_accum - 1
                    else self.accelerator.no_sync(model))
            with sync:
                with self.autocast() if compute is model else contextlib.nullcontext():
                    output = compute(**batch)
                self.accelerator.backward(output.loss / grad_accum)
            if self._copy is not None:
                self._copy.grads_to_master()
            yield output, batch

    def optimizer_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                       schedule: Schedule, step: int, elapsed: float, loss: float,
                       training: TrainingConfig) -> dict[str, float | None] | None:
        """Clip, check, step and clear the gradients of optimizer step `step` (0-based).

        Returns its learning rate and gradient norm, or None when a non-finite loss or gradient
        made it skip the step (`--nan-policy skip`); with `stop` that raises instead, before
        anything is saved."""
        lr = schedule.apply(optimizer, step, elapsed)
        clip = training.optim.clip_norm
        grad_norm = self.accelerator.clip_grad_norm_(model.parameters(), clip) if clip > 0 else None
        if not math.isfinite(loss) or (grad_norm is not None and not torch.isfinite(grad_norm)):
            optimizer.zero_grad(set_to_none=True)
            if training.nan_policy == "stop":
                raise HanlmError(
                    f"non-finite loss or gradient at step {step + 1} (loss {loss}); stopped "
                    "without saving it (lower --lr, or --nan-policy skip)")
            logger.warning("non-finite loss at step %d: step skipped", step + 1)
            return None
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if self._copy is not None:
            self._copy.refresh()
        return {"lr": lr, "grad_norm": float(grad_norm) if grad_norm is not None else None}


def _use_bf16_weights(training: TrainingConfig, precision: str, accelerator: Any) -> bool:
    """--bf16-weights where it applies, logged: bf16 on a CPU in one process. On a GPU autocast
    stays (its casts are cheap beside fused kernels; not measured there), and with several
    processes the gradients must be all-reduced on the model Accelerate wrapped."""
    if not training.bf16_weights or precision != "bf16":
        return False
    if accelerator.device.type != "cpu" or accelerator.num_processes > 1:
        logger.info("bf16 by autocast (--bf16-weights applies to one process on a CPU)")
        return False
    logger.info("bf16 weights: forward and backward on a bf16 copy of the model, AdamW on fp32 "
                "master weights (--no-bf16-weights: autocast)")
    return True


def budget_seconds(training: TrainingConfig) -> float | None:
    return None if training.max_minutes is None else training.max_minutes * 60


def schedule_budget(training: TrainingConfig) -> float | None:
    """The seconds the learning-rate schedule follows: the time budget, unless
    --no-time-schedule keeps the rate a function of the step alone."""
    return budget_seconds(training) if training.time_schedule else None


def budget_spent(training: TrainingConfig, clock: Clock) -> bool:
    budget = budget_seconds(training)
    return budget is not None and clock.elapsed() >= budget


RUN_FILE = "run.json"


def prepare_run_dir(out: Path, identity: dict[str, Any], training: TrainingConfig,
                    is_main: bool) -> bool:
    """Check `out` against the run about to start; True when it holds a run to resume.

    A run directory holds `run.json` with the run's identity (what must match for --resume to
    continue it). --resume with nothing there yet starts from step 0, so a preemptible job can
    always pass it; --overwrite replaces a run."""
    run_file = out / RUN_FILE
    if run_file.is_file():
        previous = json.loads(run_file.read_text(encoding="utf-8")).get("identity") or {}
        if training.resume:
            diff = [k for k in identity if previous.get(k) != identity[k]]
            if diff:
                raise HanlmError(
                    f"--resume: the run there differs in {', '.join(diff)} (a checkpoint of "
                    "another run cannot continue this one)", path=str(out))
            return True
        if not training.overwrite:
            raise HanlmError("already holds a run; pass --resume to continue it or --overwrite "
                             "to replace it", path=str(out))
        if is_main:
            shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()) and not training.overwrite:
        raise HanlmError("output directory is not empty (use --overwrite)", path=str(out))
    elif training.resume:
        logger.warning("--resume: no run in %s yet, starting from step 0", out)
    return False


def progress_bar(training: TrainingConfig, *, total: int, initial: int, desc: str,
                 is_main: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step",
                disable=not (training.progress and is_main) or None)


def format_metrics(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in metrics.items())
