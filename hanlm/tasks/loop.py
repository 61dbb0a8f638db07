"""The one fine-tuning loop every task shares.

It knows nothing about tasks: it gets a Hugging Face model whose forward returns ``.loss``,
the training `Feature`s, and an ``evaluate(model, accelerator) -> Evaluation`` callback whose
``metrics[main_metric]`` (higher is better) selects the best model and drives early stopping.
Accelerate provides the device, mixed precision, gradient accumulation and multi-process
training; hanlm.train provides AdamW + schedule, atomic checkpoints and the metrics log.

Resume restores model, optimizer, schedule, RNG and the data position (epoch + batch cursor;
batch orders are pure functions of seed and epoch), so k steps + resume == N steps. Ctrl-C
(SIGINT) or SIGTERM finishes the current step, saves a checkpoint and raises
KeyboardInterrupt (the CLI exits 130). With several processes, dev evaluation is shared out
by batch and gathered (`predict_outputs`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import gather_object
from torch import nn
from tqdm.auto import tqdm

from hanlm.errors import HanlmError
from hanlm.tasks.base import Feature, Outputs
from hanlm.tasks.batching import collate, eval_batches, padding_fraction, train_batches
from hanlm.train.checkpoint import latest_checkpoint, save_training_checkpoint
from hanlm.train.config import FinetuneTrainingConfig
from hanlm.train.engine import (
    Clock,
    Hooks,
    Runtime,
    budget_spent,
    format_metrics,
    progress_bar,
    schedule_budget,
)
from hanlm.train.log import MetricsLog
from hanlm.train.optim import Schedule, build_optimizer
from hanlm.train.precision import autocast
from hanlm.train.stop import StopRequested, all_agree_each

logger = logging.getLogger(__name__)


@dataclass
class Evaluation:
    metrics: dict[str, float]
    predictions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LoopState:
    step: int = 0
    epoch: int = 0
    cursor: int = 0  # batches of the current epoch already consumed (all processes)
    best: dict[str, float] | None = None
    best_step: int | None = None
    bad_evals: int = 0
    last_eval_step: int | None = None
    stopped_early: bool = False
    out_of_time: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class LoopResult:
    state: LoopState
    total_steps: int
    seconds: float


def process_state() -> PartialState:
    """This process among those torchrun / accelerate launch started (one without them).
    ``cpu=True`` is what makes Accelerate set up gloo under torchrun without a GPU."""
    return PartialState(cpu=not torch.cuda.is_available())


def metric_value(metrics: dict[str, float], name: str) -> float:
    """The main metric, NaN (e.g. Pearson r of constant predictions) counting as worst."""
    if name not in metrics:
        raise HanlmError(f"evaluation has no metric '{name}' (has: {', '.join(metrics)})")
    value = float(metrics[name])
    return -math.inf if math.isnan(value) else value


class _Trainer:
    """The state of one training run; `run` reads top to bottom."""

    def __init__(self, model: nn.Module, features: Sequence[Feature], cfg: FinetuneTrainingConfig,
                 *, run_dir, pad_id: int, evaluate, main_metric: str, on_best, extra_state,
                 hooks: Hooks, resume: bool):
        if not features:
            raise HanlmError("no training examples")
        self.cfg, self.run_dir, self.pad_id, self.hooks = cfg, Path(run_dir), pad_id, hooks
        self.features, self.lengths = features, [len(f) for f in features]
        self.evaluate, self.main_metric, self.on_best = evaluate, main_metric, on_best
        self.extra_state = extra_state
        self.resume = resume
        self.runtime = Runtime(cfg, model.config.hidden_size,
                               resume_dir=self.run_dir if resume else None)
        self.acc = self.runtime.accelerator
        self.procs = self.acc.num_processes
        n_batches = len(train_batches(self.lengths, cfg.batch_size, cfg.seed, 0,
                                      group_by_length=cfg.group_by_length))
        self.steps_per_epoch = max(1, n_batches // self.procs // cfg.grad_accum)
        self.total = cfg.max_steps or max(1, math.ceil(cfg.epochs * self.steps_per_epoch))
        self.schedule = Schedule(cfg.optim, self.total, schedule_budget(cfg))
        self.model, self.optimizer = self.runtime.prepare(model, build_optimizer(model, cfg.optim))
        self.state = LoopState()
        self.clock = Clock(hooks.now)
        self.log: MetricsLog | None = None  # opened by `run`, once the resume step is known
        self._loss_sum, self._loss_n = 0.0, 0
        self._saved_step: int | None = None
        self._lr: float | None = None
        self._stop = StopRequested()

    # ---------------------------------------------------------------- the loop

    def run(self) -> LoopResult:
        if self.resume:
            self._restore()
        self.log = MetricsLog(self.run_dir, enabled=self.acc.is_main_process,
                              tensorboard=self.cfg.tensorboard,
                              resume_step=self.state.step if self.resume else None)
        start = time.perf_counter()
        self.model.train()
        bar = progress_bar(self.cfg, total=self.total, initial=self.state.step, desc="finetune",
                           is_main=self.acc.is_local_main_process)
        self.hooks.step(self.state.step, self.acc.unwrap_model(self.model))
        with self._stop, bar:
            while not self._finished():
                finished_epoch = self._run_epoch(bar)
                if finished_epoch:
                    self.state.epoch += 1
                    self.state.cursor = 0
                    if self.cfg.eval_every is None:
                        self._evaluate_and_save()
        if self.state.last_eval_step != self.state.step:
            self._evaluate_and_save()
        if self.evaluate is None:
            self._report_best(None)
        self.log.close()
        return LoopResult(self.state, self.total, time.perf_counter() - start)

    def _finished(self) -> bool:
        return (self.state.step >= self.total or self.state.stopped_early
                or self.state.out_of_time)

    def _run_epoch(self, bar) -> bool:
        """Train on the rest of the current epoch; False when stopped before its end.

        An optimizer step takes the next grad_accum x processes batches, each process every
        processes-th of them; batches too few for a whole step end the epoch unused."""
        cfg = self.cfg
        batches = train_batches(self.lengths, cfg.batch_size, cfg.seed, self.state.epoch,
                                group_by_length=cfg.group_by_length)
        if self.state.cursor == 0:
            self.log.log(self.state.step, {"epoch": self.state.epoch, "padding_fraction":
                         round(padding_fraction(self.lengths, batches), 4)}, split="data")
        per_step = self.procs * cfg.grad_accum
        while self.state.cursor + per_step <= len(batches):
            mine = batches[self.state.cursor:self.state.cursor + per_step][
                self.acc.process_index::self.procs]
            self._train_step(mine)
            self.state.cursor += per_step
            bar.update(1)
            self._after_step()
            self.state.out_of_time, interrupted = all_agree_each(
                self.acc, budget_spent(cfg, self.clock), self._stop.signal is not None)
            if interrupted:
                self._interrupt()
            if self._finished():
                return False
        return True

    def _train_step(self, micro: list[list[int]]) -> None:
        batches = (collate([self.features[i] for i in indices], self.pad_id) for indices in micro)
        for output, _ in self.runtime.forward_backward(self.model, batches, len(micro)):
            loss = output.loss.detach().float().item()
            self._loss_sum += loss
            self._loss_n += 1
        stepped = self.runtime.optimizer_step(
            self.model, self.optimizer, schedule=self.schedule, step=self.state.step,
            elapsed=self.clock.elapsed(), loss=loss, training=self.cfg)
        self.state.step += 1
        if stepped is not None:
            self._lr = stepped["lr"]
            self.hooks.step(self.state.step, self.acc.unwrap_model(self.model))

    def _after_step(self) -> None:
        step, cfg = self.state.step, self.cfg
        if step % cfg.log_every == 0:
            self._log_train()
        if cfg.eval_every and step % cfg.eval_every == 0:
            self._evaluate_and_save()
        elif cfg.save_every is not None and step % cfg.save_every == 0:
            self._save()

    def _log_train(self) -> None:
        if not self._loss_n:
            return
        loss = self._loss_sum / self._loss_n
        self._loss_sum, self._loss_n = 0.0, 0
        self.log.log(self.state.step, {"loss": round(loss, 5), "lr": self._lr,
                                       "epoch": self.state.epoch})
        logger.debug("step %d loss %.4f", self.state.step, loss)

    def _interrupt(self) -> None:
        """Checkpoint the step just finished (unless already saved), then stop the run."""
        if self._saved_step != self.state.step:
            self._save()
        logger.warning("interrupted at step %d; checkpoint saved, continue with --resume",
                       self.state.step)
        self.log.close()
        raise KeyboardInterrupt

    # ---------------------------------------------------------------- eval, best, stop

    def _evaluate_and_save(self) -> None:
        self._log_train()
        self.state.last_eval_step = self.state.step
        if self.evaluate is not None:
            model = self.acc.unwrap_model(self.model)
            model.eval()
            # In fp32 whatever the training precision, by choice: the best model and the dev
            # scores then do not depend on what `--precision auto` measured (a loaded machine
            # can pick differently from one run to the next), `hanlm evaluate --precision fp32`
            # reproduces them exactly, and the forward-only dev pass is a small share of a run
            # (NSMC: 7,500 dev reviews per epoch against 142,500 trained on).
            with torch.no_grad():
                evaluation = self.evaluate(model, self.acc)
            model.train()
            self.log.log(self.state.step, evaluation.metrics, split="dev")
            logger.info("step %d dev %s", self.state.step, format_metrics(evaluation.metrics))
            self._track_best(evaluation)
        self._save()

    def _track_best(self, evaluation: Evaluation) -> None:
        value = metric_value(evaluation.metrics, self.main_metric)
        best = None if self.state.best is None else metric_value(self.state.best, self.main_metric)
        if best is None or value > best:
            self.state.best, self.state.best_step, self.state.bad_evals = (
                evaluation.metrics, self.state.step, 0)
            self._report_best(evaluation)
            return
        self.state.bad_evals += 1
        if self.cfg.patience is not None and self.state.bad_evals >= self.cfg.patience:
            logger.info("early stopping: %s has not improved for %d evaluations (best %.4f at "
                        "step %d)", self.main_metric, self.state.bad_evals, best,
                        self.state.best_step)
            self.state.stopped_early = True

    def _report_best(self, evaluation: Evaluation | None) -> None:
        if self.acc.is_main_process:
            self.on_best(self.acc.unwrap_model(self.model), evaluation, self.state.step,
                         self.total)
        self.acc.wait_for_everyone()

    # ---------------------------------------------------------------- checkpoints

    def _save(self) -> None:
        if self.acc.is_main_process:
            save_training_checkpoint(
                self.run_dir, self.state.step, module=self.acc.unwrap_model(self.model),
                optimizer=self.optimizer, elapsed=self.clock.elapsed(),
                precision=self.runtime.choice.precision, loop=self.state.to_json(),
                keep=self.cfg.keep_checkpoints, extra={"total_steps": self.total, **self.extra_state})
        self._saved_step = self.state.step
        self.acc.wait_for_everyone()

    def _restore(self) -> None:
        ckpt = latest_checkpoint(self.run_dir)
        if ckpt is None:
            logger.warning("--resume: no checkpoint in %s yet, starting from step 0",
                           self.run_dir)
            return
        if ckpt.state.get("total_steps") != self.total:
            logger.warning("resuming with %s total steps (the checkpoint planned %s)",
                           self.total, ckpt.state.get("total_steps"))
        ckpt.restore(self.acc.unwrap_model(self.model), self.optimizer)
        self.state = LoopState(**ckpt.loop)
        self.clock = Clock(self.hooks.now, ckpt.elapsed_seconds)
        logger.info("resumed from %s (step %d, epoch %d, batch %d)", ckpt.path, self.state.step,
                    self.state.epoch, self.state.cursor)


def train(
    model: nn.Module,
    features: Sequence[Feature],
    cfg: FinetuneTrainingConfig,
    *,
    run_dir,
    pad_id: int,
    evaluate: Callable[[nn.Module, Accelerator], Evaluation] | None,
    main_metric: str,
    on_best: Callable[[nn.Module, Evaluation | None, int, int], None],
    resume: bool = False,
    extra_state: dict[str, Any] | None = None,
    hooks: Hooks | None = None,
) -> LoopResult:
    """Fine-tune `model` on `features`; `on_best(model, evaluation, step, total)` runs (main process)
    whenever the main metric improves, or once at the end when there is no ``evaluate``.

    ``evaluate(model, accelerator)`` runs on every process; passing the accelerator on to
    `predict_outputs` shares the dev set out among them."""
    trainer = _Trainer(model, features, cfg, run_dir=run_dir, pad_id=pad_id, evaluate=evaluate,
                       main_metric=main_metric, on_best=on_best, extra_state=extra_state or {},
                       hooks=hooks or Hooks(), resume=resume)
    return trainer.run()


# ------------------------------------------------------------------------------ inference

_TOKEN_LEVEL_KEYS = ("start_logits", "end_logits")


@torch.inference_mode()
def predict_outputs(
    model: nn.Module, features: Sequence[Feature], *, batch_size: int, pad_id: int,
    progress: bool = False, accelerator: Accelerator | None = None, precision: str = "fp32",
) -> list[Outputs]:
    """Run `model` over `features`; one dict of unpadded numpy outputs per feature, in order.

    The forward runs in `precision` (fp32, bf16 or fp16: autocast); the outputs are fp32
    whatever it is, so decoding (argmax, softmax, span scores) and the numbers written are
    the same code in every precision.

    With an `accelerator` of several processes, each runs every n-th batch and all of them
    gather every output, so each returns exactly what one process would (the same batches,
    hence the same padding). `gather_object` rather than `gather_for_metrics`: outputs have
    one length per feature, and the last process's share may be smaller."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    lengths = [len(f) for f in features]
    results: dict[int, Outputs] = {}
    batches = eval_batches(lengths, batch_size)
    shared = accelerator is not None and accelerator.num_processes > 1
    if shared:
        batches = batches[accelerator.process_index :: accelerator.num_processes]
    for indices in tqdm(batches, desc="predict", unit="batch", disable=not progress):
        batch = collate([features[i] for i in indices], pad_id)
        inputs = {k: batch[k].to(device) for k in ("input_ids", "token_type_ids", "attention_mask")}
        with autocast(precision, device):
            out = model(**inputs)
        arrays = {k: v.float().cpu().numpy() for k, v in out.items()
                  if k in ("logits", *_TOKEN_LEVEL_KEYS) and v is not None}
        for row, i in enumerate(indices):
            results[i] = {k: _unpad(k, a[row], lengths[i]) for k, a in arrays.items()}
    if shared:
        results = {i: out for part in gather_object([results]) for i, out in part.items()}
    model.train(was_training)
    return [results[i] for i in range(len(features))]


def _unpad(key: str, array: np.ndarray, length: int) -> np.ndarray:
    if key in _TOKEN_LEVEL_KEYS or array.ndim == 2:  # per-token outputs: [seq] or [seq, labels]
        return array[:length]
    return array
