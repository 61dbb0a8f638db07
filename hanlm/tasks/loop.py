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
from typing import Any, Literal

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import gather_object
from torch import nn
from tqdm.auto import tqdm

from hanlm.config import opt
from hanlm.errors import HanlmError
from hanlm.tasks.base import Feature, Outputs
from hanlm.tasks.batching import collate, eval_batches, padding_fraction, train_batches
from hanlm.train.checkpoint import latest_checkpoint, restore_rng, save_checkpoint
from hanlm.train.log import MetricsLog
from hanlm.train.optim import OptimConfig, build_optimizer, build_scheduler
from hanlm.train.stop import StopRequested, all_agree

logger = logging.getLogger(__name__)


@dataclass
class FinetuneOptimConfig(OptimConfig):
    """OptimConfig with fine-tuning defaults (Devlin et al. 2019, appendix A.3)."""

    lr: float = opt(5e-5, "peak learning rate", min=0, exclusive_min=True)
    beta2: float = opt(0.999, "AdamW beta2", min=0)
    eps: float = opt(1e-8, "AdamW epsilon", min=0, exclusive_min=True)
    warmup_ratio: float = opt(0.1, "warm-up as a fraction of all steps", min=0)


@dataclass
class TrainConfig:
    epochs: float = opt(3.0, "passes over the training data", min=0, exclusive_min=True)
    max_steps: int | None = opt(None, "stop after this many optimizer steps (overrides --epochs)",
                                min=1)
    batch_size: int = opt(32, "training batch size (per process)", min=1)
    eval_batch_size: int = opt(64, "evaluation batch size", min=1)
    grad_accum: int = opt(1, "gradient accumulation steps", min=1)
    eval_every: int | None = opt(None, "evaluate every N steps (default: once per epoch)", min=1)
    patience: int | None = opt(None, "early stopping: stop after N evaluations without "
                               "improvement of the main metric", min=1)
    log_every: int = opt(50, "log the training loss every N steps", min=1)
    save_every: int | None = opt(None, "checkpoint every N steps (default: at each evaluation)",
                                 min=1)
    keep_checkpoints: int = opt(2, "checkpoints kept (0 = all)", min=0)
    seed: int = opt(42, "random seed (initialisation, dropout, batch order)")
    group_by_length: bool = opt(True, "batch similar lengths together (less padding)")
    mixed_precision: Literal["no", "fp16", "bf16"] = opt("no", "mixed precision on GPU")
    progress: bool = opt(True, "show a progress bar")
    optim: FinetuneOptimConfig = opt(factory=FinetuneOptimConfig, flatten=True)


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

    def __init__(self, model: nn.Module, features: Sequence[Feature], cfg: TrainConfig, *,
                 run_dir, pad_id: int, evaluate, main_metric: str, on_best, extra_state):
        if not features:
            raise HanlmError("no training examples")
        self.cfg, self.run_dir, self.pad_id = cfg, run_dir, pad_id
        self.features, self.lengths = features, [len(f) for f in features]
        self.evaluate, self.main_metric, self.on_best = evaluate, main_metric, on_best
        self.extra_state = extra_state
        self.acc = Accelerator(mixed_precision=cfg.mixed_precision,
                               gradient_accumulation_steps=cfg.grad_accum,
                               cpu=not torch.cuda.is_available())
        self.procs = self.acc.num_processes
        n_batches = len(train_batches(self.lengths, cfg.batch_size, cfg.seed, 0,
                                      group_by_length=cfg.group_by_length))
        self.steps_per_epoch = max(1, n_batches // self.procs // cfg.grad_accum)
        self.total = cfg.max_steps or max(1, math.ceil(cfg.epochs * self.steps_per_epoch))
        optimizer = build_optimizer(model, cfg.optim)
        # Not prepared by Accelerate: it would step the schedule once per process.
        self.scheduler = build_scheduler(optimizer, cfg.optim, self.total)
        self.model, self.optimizer = self.acc.prepare(model, optimizer)
        self.state = LoopState()
        self.log: MetricsLog | None = None  # opened by `run`, once the resume step is known
        self._loss_sum, self._loss_n = 0.0, 0
        self._saved_step: int | None = None
        self._stop = StopRequested()

    # ---------------------------------------------------------------- the loop

    def run(self, resume: bool) -> LoopResult:
        if resume:
            self._restore()
        self.log = MetricsLog(self.run_dir, enabled=self.acc.is_main_process,
                              resume_step=self.state.step if resume else None)
        start = time.perf_counter()
        self.model.train()
        bar = tqdm(total=self.total, initial=self.state.step, desc="finetune", unit="step",
                   disable=not (self.cfg.progress and self.acc.is_local_main_process))
        with self._stop, bar:
            while self.state.step < self.total and not self.state.stopped_early:
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

    def _run_epoch(self, bar) -> bool:
        """Train on the rest of the current epoch; False when stopped before its end."""
        cfg = self.cfg
        batches = train_batches(self.lengths, cfg.batch_size, cfg.seed, self.state.epoch,
                                group_by_length=cfg.group_by_length)
        if self.state.cursor == 0:
            self.log.log(self.state.step, {"epoch": self.state.epoch, "padding_fraction":
                         round(padding_fraction(self.lengths, batches), 4)}, split="data")
        remaining = batches[self.state.cursor:]
        usable = len(remaining) - len(remaining) % self.procs  # every process the same count
        for i in range(self.acc.process_index, usable, self.procs):
            self._train_batch(remaining[i])
            self.state.cursor += self.procs
            if not self.acc.sync_gradients:
                continue
            self.state.step += 1
            bar.update(1)
            self._after_step()
            if all_agree(self.acc, self._stop.signal is not None):
                self._interrupt()
            if self.state.step >= self.total or self.state.stopped_early:
                return False
        return True

    def _train_batch(self, indices: list[int]) -> None:
        batch = self._to_device(collate([self.features[i] for i in indices], self.pad_id))
        with self.acc.accumulate(self.model):
            loss = self.model(**batch).loss
            self.acc.backward(loss)
            if self.acc.sync_gradients and self.cfg.optim.clip_norm > 0:
                self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.optim.clip_norm)
            self.optimizer.step()
            self.optimizer.zero_grad()
        if self.acc.sync_gradients:
            self.scheduler.step()
        self._loss_sum += loss.detach().float().item()
        self._loss_n += 1

    def _after_step(self) -> None:
        step, cfg = self.state.step, self.cfg
        if step % cfg.log_every == 0:
            self._log_train()
        if cfg.eval_every is not None and step % cfg.eval_every == 0:
            self._evaluate_and_save()
        elif cfg.save_every is not None and step % cfg.save_every == 0:
            self._save()

    def _log_train(self) -> None:
        if not self._loss_n:
            return
        loss = self._loss_sum / self._loss_n
        self._loss_sum, self._loss_n = 0.0, 0
        self.log.log(self.state.step, {"loss": round(loss, 5), "lr": self.scheduler.get_last_lr()[0],
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
            with torch.no_grad():
                evaluation = self.evaluate(model, self.acc)
            model.train()
            self.log.log(self.state.step, evaluation.metrics, split="dev")
            logger.info("step %d dev %s", self.state.step, _fmt(evaluation.metrics))
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
            save_checkpoint(
                self.run_dir, self.state.step,
                model_state=self.acc.unwrap_model(self.model).state_dict(),
                optimizer_state={"optimizer": self.optimizer.state_dict(),
                                 "scheduler": self.scheduler.state_dict()},
                state={"loop": self.state.to_json(), "total_steps": self.total,
                       **self.extra_state},
                keep=self.cfg.keep_checkpoints,
            )
        self._saved_step = self.state.step
        self.acc.wait_for_everyone()

    def _restore(self) -> None:
        ckpt = latest_checkpoint(self.run_dir)
        if ckpt is None:
            raise HanlmError("--resume: no usable checkpoint in the run directory",
                             path=str(self.run_dir))
        if ckpt.state.get("total_steps") != self.total:
            logger.warning("resuming with %s total steps (the checkpoint planned %s)",
                           self.total, ckpt.state.get("total_steps"))
        self.acc.unwrap_model(self.model).load_state_dict(ckpt.model_state())
        saved = ckpt.optimizer_state()
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        restore_rng(ckpt.rng_state())
        self.state = LoopState(**ckpt.state["loop"])
        logger.info("resumed from %s (step %d, epoch %d, batch %d)", ckpt.path, self.state.step,
                    self.state.epoch, self.state.cursor)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.acc.device) for k, v in batch.items()}


def train(
    model: nn.Module,
    features: Sequence[Feature],
    cfg: TrainConfig,
    *,
    run_dir,
    pad_id: int,
    evaluate: Callable[[nn.Module, Accelerator], Evaluation] | None,
    main_metric: str,
    on_best: Callable[[nn.Module, Evaluation | None, int, int], None],
    resume: bool = False,
    extra_state: dict[str, Any] | None = None,
) -> LoopResult:
    """Fine-tune `model` on `features`; `on_best(model, evaluation, step, total)` runs (main process)
    whenever the main metric improves, or once at the end when there is no ``evaluate``.

    ``evaluate(model, accelerator)`` runs on every process; passing the accelerator on to
    `predict_outputs` shares the dev set out among them."""
    trainer = _Trainer(model, features, cfg, run_dir=run_dir, pad_id=pad_id, evaluate=evaluate,
                       main_metric=main_metric, on_best=on_best, extra_state=extra_state or {})
    return trainer.run(resume)


# ------------------------------------------------------------------------------ inference

_TOKEN_LEVEL_KEYS = ("start_logits", "end_logits")


@torch.no_grad()
def predict_outputs(
    model: nn.Module, features: Sequence[Feature], *, batch_size: int, pad_id: int,
    progress: bool = False, accelerator: Accelerator | None = None,
) -> list[Outputs]:
    """Run `model` over `features`; one dict of unpadded numpy outputs per feature, in order.

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


def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in metrics.items())
