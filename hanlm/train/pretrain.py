"""`hanlm pretrain`: BERT (MLM + NSP) on built shards, through Accelerate.

One process or many (`torchrun` / `accelerate launch`, CPU gloo or GPUs, DeepSpeed through an
Accelerate config): the loop below is the same. A step reads top to bottom: micro-batches ->
forward/backward (gradient sync only on the last) -> clip -> optimizer -> schedule -> log /
evaluate / checkpoint. Checkpoints hold everything needed to continue bit-identically: weights,
optimizer and scheduler state, RNG states, and the step, which fixes the data position (see
hanlm/data/batches.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from hanlm import __version__, atomic
from hanlm import config as config_lib
from hanlm.config import opt
from hanlm.data.batches import BatchSchedule, Collator, micro_batches, sample_lengths
from hanlm.data.masking import MaskingConfig
from hanlm.data.shards import ShardReader, read_meta
from hanlm.errors import HanlmError
from hanlm.model.bert import (
    PretrainingModel,
    build_bert_config,
    new_pretraining_model,
    set_dropout,
)
from hanlm.model.presets import PRESETS
from hanlm.tokenizer import KoreanTokenizer
from hanlm.tokenizer import format as tokenizer_files
from hanlm.train.checkpoint import latest_checkpoint, restore_rng, save_checkpoint
from hanlm.train.log import MetricsLog
from hanlm.train.optim import OptimConfig, build_optimizer, build_scheduler
from hanlm.train.stop import StopRequested, all_agree

logger = logging.getLogger(__name__)

EVAL_EPOCH = 2**31 - 1  # masking "epoch" of the held-out set: the same masks at every evaluation


@dataclass
class PretrainConfig:
    data: str = opt(help="directory written by `hanlm data build`")
    out: str = opt(help="run directory (config, logs, checkpoints)")
    preset: Literal["tiny", "mini", "small", "medium", "base"] = opt("mini", "model size")
    max_steps: int = opt(1000, "optimizer steps", min=1)
    max_minutes: float | None = opt(None, "stop (with a checkpoint) after this many minutes", min=0)
    batch_size: int = opt(32, "sequences per micro-batch per process", min=1)
    grad_accum: int = opt(1, "micro-batches per optimizer step", min=1)
    batch_ramp_steps: int = opt(
        0, "grow each micro-batch linearly from --batch-ramp-start sequences to --batch-size "
        "over the first N steps (0 = off; hanlm/data/batches.py: BatchSchedule)", min=0)
    batch_ramp_start: int = opt(4, "sequences per micro-batch at step 0 of the ramp", min=1)
    length_buckets: int = opt(
        64, "batch the samples of this many consecutive steps by length, so batches carry less "
        "padding (1 = off; see hanlm/data/batches.py)", min=1)
    seed: int = opt(42, "seed for initialisation, data order, masking and dropout")
    dropout: float = opt(
        0.0, "dropout of hidden states and attention while pretraining (0: none, as cramming and "
        "ModernBERT pretrain; 1.2-1.3x faster here, docs/BENCHMARKS.md)", min=0)
    export_dropout: float = opt(
        0.1, "dropout written into a new model's config, which fine-tuning reads (BERT's 0.1)",
        min=0)
    mlm_bias_init: Literal["unigram", "zeros"] = opt(
        "unigram", "a new model's MLM output bias: the log frequencies of the training tokens "
        "(it starts where the early MLM plateau ends, docs/BENCHMARKS.md) or zeros (Hugging Face)")
    init_from: str | None = opt(None, "start from this Hugging Face BERT directory (continued pretraining)")
    trust_pickle: bool = opt(False, "allow --init-from pickle (pytorch_model.bin) weights, which can run code")
    precision: Literal["auto", "fp32", "bf16"] = opt("auto", "auto = bf16 on GPUs that have it, else fp32")
    threads: int = opt(0, "CPU threads for PyTorch (0 = its default)", min=0)
    log_every: int = opt(10, "log training metrics every N steps", min=1)
    eval_every: int = opt(200, "evaluate on the held-out split every N steps (0 = only at the end)", min=0)
    eval_batches: int = opt(20, "held-out batches per evaluation", min=1)
    save_every: int = opt(500, "checkpoint every N steps (and always at the end)", min=1)
    keep_checkpoints: int = opt(3, "checkpoints kept (0 = all)", min=0)
    nan_policy: Literal["stop", "skip"] = opt("stop", "on a non-finite loss: stop, or skip the step")
    tensorboard: bool = opt(True, "also write TensorBoard logs")
    resume: bool = opt(False, "continue from the latest checkpoint in --out")
    overwrite: bool = opt(False, "replace a different run in --out")
    optim: OptimConfig = opt(factory=OptimConfig)
    masking: MaskingConfig = opt(factory=MaskingConfig, flatten=True)


# ---------------------------------------------------------------- set-up


def batch_schedule(cfg: PretrainConfig, world: int = 1) -> BatchSchedule:
    return BatchSchedule(micro=cfg.batch_size, accum=cfg.grad_accum, world=world,
                         ramp_steps=cfg.batch_ramp_steps, ramp_start=cfg.batch_ramp_start)


def _accelerator(cfg: PretrainConfig):
    from accelerate import Accelerator

    mixed = "no"
    if cfg.precision == "bf16" or (
        cfg.precision == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    ):
        mixed = "bf16"
    # cpu=True is what makes Accelerate set up gloo under torchrun on machines without a GPU.
    return Accelerator(mixed_precision=mixed, cpu=not torch.cuda.is_available())


def _run_identity(cfg: PretrainConfig, meta: dict) -> dict:
    """What must match for --resume to continue a run."""
    return {
        "data": meta["tokenizer_fingerprint"] + ":" + config_lib.fingerprint(meta["splits"]),
        "preset": cfg.preset,
        "seed": cfg.seed,
    }


def _prepare_run_dir(cfg: PretrainConfig, identity: dict, is_main: bool) -> Path:
    out = Path(cfg.out)
    run_file = out / "run.json"
    if run_file.is_file():
        previous = json.loads(run_file.read_text(encoding="utf-8")).get("identity")
        if cfg.resume:
            if previous != identity:
                diff = [k for k in identity if previous.get(k) != identity[k]]
                raise HanlmError(
                    f"--resume: the run there differs in {', '.join(diff)} "
                    "(a checkpoint from another preset or data cannot continue this run)",
                    path=str(out),
                )
            return out
        if not cfg.overwrite:
            raise HanlmError(
                "directory already holds a run; pass --resume to continue it or --overwrite to "
                "replace it", path=str(out),
            )
        if is_main:
            shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise HanlmError("output directory is not empty (use --overwrite)", path=str(out))
    return out


def _write_run_files(out: Path, cfg: PretrainConfig, identity: dict, meta: dict, tok_dir: Path, model_config) -> None:
    out.mkdir(parents=True, exist_ok=True)
    config_lib.save(cfg, out / "config.yaml")
    if not (out / "tokenizer").is_dir():
        with atomic.directory(out / "tokenizer") as tmp:
            tokenizer_files.copy_files(tok_dir, tmp)
    run = {
        "hanlm_version": __version__,
        "identity": identity,
        "data": str(Path(cfg.data).resolve()),
        "data_meta": {k: meta[k] for k in ("documents", "chars", "max_len", "splits", "settings")},
        "model_config": model_config.to_dict(),
    }
    atomic.write_text(out / "run.json", json.dumps(run, indent=2, ensure_ascii=False, default=str))


def _build_model(cfg: PretrainConfig, tok: KoreanTokenizer, meta: dict,
                 unigram: torch.Tensor) -> PretrainingModel:
    model = _new_or_loaded_model(cfg, tok, meta)
    if not cfg.init_from and cfg.mlm_bias_init == "unigram":
        init_mlm_bias(model, unigram)
    set_dropout(model, cfg.dropout)
    return model


def init_mlm_bias(model: PretrainingModel, log_probs: torch.Tensor) -> None:
    """Start the MLM output bias at the log frequencies of the tokens it will predict.

    Hugging Face starts it at zeros, so a new BERT predicts every token as likely (loss ln V)
    and spends its first few hundred optimizer steps learning token frequencies into the bias
    (the early plateau, docs/RESULTS.md). A masked token is drawn from the training tokens, so
    their log frequencies are the best context-free prediction; starting there is the usual
    "initialise the output to the prior" advice. The model stays a stock BertForPreTraining
    (the bias is a normal parameter, tied to the decoder's)."""
    with torch.no_grad():
        model.bert.cls.predictions.bias.copy_(log_probs.to(model.bert.cls.predictions.bias.dtype))


def _new_or_loaded_model(cfg: PretrainConfig, tok: KoreanTokenizer, meta: dict) -> PretrainingModel:
    if cfg.init_from:
        return PretrainingModel(_load_init_from(cfg, tok, meta))
    if meta["max_len"] > 512:
        logger.info("data max_len %d: the new model gets %d positions", meta["max_len"], meta["max_len"])
    bert_config = build_bert_config(
        cfg.preset,
        vocab_size=tok.vocab_size,
        max_position_embeddings=max(512, meta["max_len"]),
        pad_token_id=tok.pad_id,
        dropout=cfg.export_dropout,
        # Measured on 2 Xeon cores (docs/BENCHMARKS.md, bench/levers.py): at seq 128 the eager
        # attention is as fast as SDPA on padded batches and ~12% faster on unpadded ones.
        attn_implementation="sdpa" if torch.cuda.is_available() else "eager",
    )
    return new_pretraining_model(bert_config, cfg.seed)


def _load_init_from(cfg: PretrainConfig, tok: KoreanTokenizer, meta: dict):
    """The --init-from model, refused when it cannot read this data: pickle weights (unless
    --trust-pickle), another tokenizer, or fewer positions than the data's sequences."""
    from transformers import BertForPreTraining

    from hanlm.model.weights import check_weights

    directory = Path(cfg.init_from)
    if not (directory / "config.json").is_file():
        raise HanlmError("not a model directory (no config.json)", path=str(directory))
    safe = check_weights(directory, cfg.trust_pickle)
    if (directory / "tokenizer.json").is_file():
        theirs = KoreanTokenizer.load(directory).fingerprint
        if theirs != tok.fingerprint:
            raise HanlmError(
                f"the model's tokenizer ({theirs}) is not the one the data was built with "
                f"({tok.fingerprint}); rebuild the data with --tokenizer {directory}",
                path=str(directory),
            )
    if not safe:
        logger.warning("%s: loading pickle weights (--trust-pickle): this can run code", directory)
    bert = BertForPreTraining.from_pretrained(directory, use_safetensors=safe)
    if bert.config.vocab_size != tok.vocab_size:
        raise HanlmError(
            f"model vocab ({bert.config.vocab_size}) does not match the data's tokenizer "
            f"({tok.vocab_size})", path=str(directory),
        )
    if meta["max_len"] > bert.config.max_position_embeddings:
        raise HanlmError(
            f"the data's max_len {meta['max_len']} exceeds the model's "
            f"{bert.config.max_position_embeddings} positions (rebuild with --max-len "
            f"{bert.config.max_position_embeddings})", path=str(directory),
        )
    return bert


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model: PretrainingModel, reader: ShardReader, collate: Collator, *, batch_size: int,
             batches: int, device: torch.device,
             unigram_log_probs: torch.Tensor | None = None) -> dict[str, float]:
    """Token-weighted MLM loss/accuracy and NSP loss/accuracy on the first instances of the
    held-out split, with fixed masks so evaluations compare across steps.

    With `unigram_log_probs` (see `unigram_log_probs`) it also reports the loss on the positions
    shown as [MASK] (`mlm_masked_loss`), what a model knowing only token frequencies scores there
    (`mlm_unigram_loss`), and their difference, `mlm_context_gain` in nats: how much the model
    uses the context. Early in pretraining a BERT sits on a plateau where it predicts token
    frequencies and copies the tokens that are not masked; the total MLM loss then still falls
    (the copying), but the context gain stays near 0 until the model leaves the plateau.
    """
    was_training = model.training
    model.eval()
    n = min(len(reader), batches * batch_size)
    totals = dict(mlm_loss=0.0, mlm_correct=0, mlm_count=0, nsp_loss=0.0, nsp_correct=0, nsp_count=0,
                  masked_loss=0.0, unigram_loss=0.0, masked_count=0)
    for lo in range(0, n, batch_size):
        idx = list(range(lo, min(n, lo + batch_size)))
        batch = collate([reader[i] for i in idx], idx, [EVAL_EPOCH] * len(idx))
        out = model(**{k: v.to(device) for k, v in batch.items()})
        totals["mlm_loss"] += out.mlm_loss.item() * int(out.mlm_count)
        totals["nsp_loss"] += out.nsp_loss.item() * int(out.nsp_count)
        for key in ("mlm_correct", "mlm_count", "nsp_correct", "nsp_count"):
            totals[key] += int(getattr(out, key))
        if unigram_log_probs is not None:
            shown_as_mask = batch["input_ids"].flatten()[batch["mlm_positions"]] == collate.mask_id
            totals["masked_loss"] += out.mlm_token_losses.cpu()[shown_as_mask].sum().item()
            totals["unigram_loss"] -= unigram_log_probs[batch["mlm_labels"][shown_as_mask]].sum().item()
            totals["masked_count"] += int(shown_as_mask.sum())
    model.train(was_training)
    mlm_loss = totals["mlm_loss"] / max(1, totals["mlm_count"])
    nsp_loss = totals["nsp_loss"] / max(1, totals["nsp_count"])
    metrics = {
        "loss": mlm_loss + nsp_loss,
        "mlm_loss": mlm_loss,
        "mlm_accuracy": totals["mlm_correct"] / max(1, totals["mlm_count"]),
        "nsp_loss": nsp_loss,
        "nsp_accuracy": totals["nsp_correct"] / max(1, totals["nsp_count"]),
        "instances": n,
    }
    if totals["masked_count"]:
        masked = totals["masked_loss"] / totals["masked_count"]
        unigram = totals["unigram_loss"] / totals["masked_count"]
        metrics.update(mlm_masked_loss=masked, mlm_unigram_loss=unigram,
                       mlm_context_gain=unigram - masked)
    return metrics


def unigram_log_probs(reader: ShardReader, vocab_size: int, special_ids: set[int]) -> torch.Tensor:
    """Log frequency of every token id in a split, special tokens left out (they are never
    predicted), add-0.5 smoothed; read shard by shard."""
    counts = np.full(vocab_size, 0.5)
    for shard in reader.shards:
        counts += np.bincount(np.asarray(shard["input_ids"]), minlength=vocab_size)[:vocab_size]
    counts[sorted(special_ids)] = 0.5
    return torch.from_numpy(np.log(counts / counts.sum()))


# ---------------------------------------------------------------- the loop


class _Window:
    """Running sums between two log lines."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.micro_steps = 0
        self.mlm_loss = self.nsp_loss = 0.0
        self.mlm_correct = self.mlm_count = self.nsp_correct = self.nsp_count = 0
        self.tokens = self.samples = 0
        self.started = time.perf_counter()

    def add(self, out, batch) -> None:
        self.mlm_loss += out.mlm_loss.item()
        self.nsp_loss += out.nsp_loss.item()
        self.mlm_correct += int(out.mlm_correct)
        self.mlm_count += int(out.mlm_count)
        self.nsp_correct += int(out.nsp_correct)
        self.nsp_count += int(out.nsp_count)
        self.tokens += int(batch["attention_mask"].sum())
        self.samples += batch["input_ids"].shape[0]
        self.micro_steps += 1

    def metrics(self, accelerator) -> dict[str, float]:
        """Averages over the window and over every process (so the figures do not depend on
        how the global batch was split)."""
        seconds = time.perf_counter() - self.started
        sums = torch.tensor(
            [self.mlm_loss, self.nsp_loss, self.micro_steps, self.mlm_correct, self.mlm_count,
             self.nsp_correct, self.nsp_count, self.tokens, self.samples],
            dtype=torch.float64, device=accelerator.device,
        )
        if accelerator.num_processes > 1:
            sums = accelerator.reduce(sums, reduction="sum")
        mlm_loss, nsp_loss, micro, mlm_ok, mlm_n, nsp_ok, nsp_n, tokens, samples = sums.tolist()
        return {
            "loss": (mlm_loss + nsp_loss) / max(1, micro),
            "mlm_loss": mlm_loss / max(1, micro),
            "nsp_loss": nsp_loss / max(1, micro),
            "mlm_accuracy": mlm_ok / max(1, mlm_n),
            "nsp_accuracy": nsp_ok / max(1, nsp_n),
            "tokens_per_second": tokens / max(seconds, 1e-9),
            "samples_per_second": samples / max(seconds, 1e-9),
        }


def pretrain(cfg: PretrainConfig, on_step: Callable[[int, PretrainingModel], None] | None = None) -> Path:
    """Train as `cfg` says. `on_step(step, model)`, if given, is called before the first step
    and after every optimizer step with the unwrapped model (bench/pretrain.py times steps and
    evaluates with it)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    meta = read_meta(cfg.data)
    tok_dir = Path(cfg.data) / "tokenizer"
    tok = KoreanTokenizer.load(tok_dir)
    if meta["tokenizer_fingerprint"] != tok.fingerprint:
        raise HanlmError("the tokenizer copy in the data directory does not match its meta.json",
                         path=str(tok_dir))
    if cfg.preset not in PRESETS:
        raise HanlmError(f"unknown preset '{cfg.preset}'")
    accelerator = _accelerator(cfg)
    identity = _run_identity(cfg, meta)
    out = _prepare_run_dir(cfg, identity, accelerator.is_main_process)
    accelerator.wait_for_everyone()

    train_reader = ShardReader(cfg.data, "train")
    eval_reader = ShardReader(cfg.data, "eval")
    train_lengths = sample_lengths(train_reader)
    unigram = unigram_log_probs(train_reader, tok.vocab_size, tok.special_ids)
    collate = Collator(pad_id=tok.pad_id, mask_id=tok.mask_id, special_ids=tok.special_ids,
                       vocab_size=tok.vocab_size, masking=cfg.masking, seed=cfg.seed)
    model = _build_model(cfg, tok, meta, unigram)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.max_steps)

    start_step = 0
    checkpoint = latest_checkpoint(out) if cfg.resume else None
    if checkpoint is not None:
        model.bert.load_state_dict(checkpoint.model_state())
        optimizer.load_state_dict(checkpoint.optimizer_state())
        scheduler.load_state_dict(checkpoint.state["scheduler"])
        start_step = checkpoint.step
        logger.info("resuming from %s (step %d)", checkpoint.path, start_step)
    elif cfg.resume:
        logger.warning("--resume: no checkpoint in %s yet, starting from step 0", out)
    if accelerator.is_main_process:
        _write_run_files(out, cfg, identity, meta, tok_dir, model.config)
    accelerator.wait_for_everyone()

    model, optimizer = accelerator.prepare(model, optimizer)
    if checkpoint is not None:
        restore_rng(checkpoint.rng_state())
    else:
        torch.manual_seed(cfg.seed + accelerator.process_index)
    model.train()
    log = MetricsLog(out, enabled=accelerator.is_main_process, tensorboard=cfg.tensorboard,
                     resume_step=start_step if cfg.resume else None)
    world, rank = accelerator.num_processes, accelerator.process_index
    schedule = batch_schedule(cfg, world)
    logger.info(
        "pretraining %s (%.1fM parameters) on %d instances: %d steps of %d sequences (%d x %d x %d)%s",
        cfg.preset, sum(p.numel() for p in model.parameters()) / 1e6, len(train_reader),
        cfg.max_steps, schedule.size(cfg.max_steps), cfg.batch_size, cfg.grad_accum, world,
        f", growing from {schedule.size(0)} over the first {cfg.batch_ramp_steps} steps"
        if cfg.batch_ramp_steps else "",
    )

    def save(step: int, extra: dict | None = None) -> None:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(model)
            save_checkpoint(
                out, step,
                # clone: BERT ties the decoder to the embeddings; safetensors refuses shared storage
                model_state={k: v.detach().cpu().clone() for k, v in unwrapped.bert.state_dict().items()},
                optimizer_state=optimizer.state_dict(),
                state={"scheduler": scheduler.state_dict(),
                       "samples_seen": schedule.start(step),
                       "preset": cfg.preset, **(extra or {})},
                keep=cfg.keep_checkpoints,
            )
        accelerator.wait_for_everyone()

    def run_eval(step: int) -> dict | None:
        if len(eval_reader) == 0:
            return None
        metrics = evaluate(accelerator.unwrap_model(model), eval_reader, collate,
                           batch_size=cfg.batch_size, batches=cfg.eval_batches,
                           device=accelerator.device, unigram_log_probs=unigram)
        log.log(step, metrics, split="eval")
        logger.info("step %d eval: %s", step, _fmt(metrics))
        return metrics

    started = time.time()
    window = _Window()
    step = start_step
    last_saved = start_step if checkpoint is not None else -1
    eval_metrics = None
    progress = tqdm(total=cfg.max_steps, initial=start_step, desc="pretrain", unit="step",
                    disable=not accelerator.is_main_process or None)
    if on_step is not None:
        on_step(step, accelerator.unwrap_model(model))
    with StopRequested() as stop:
        while step < cfg.max_steps:
            for k, (idx, epochs) in enumerate(micro_batches(
                step, schedule, rank=rank, n=len(train_reader), seed=cfg.seed,
                lengths=train_lengths, bucket_steps=cfg.length_buckets,
            )):
                batch = collate([train_reader[int(i)] for i in idx], idx, epochs)
                batch = {key: v.to(accelerator.device) for key, v in batch.items()}
                last = k == cfg.grad_accum - 1
                sync = contextlib.nullcontext() if last else accelerator.no_sync(model)
                with sync, accelerator.autocast():
                    output = model(**batch)
                    accelerator.backward(output.loss / cfg.grad_accum)
                window.add(output, batch)
            grad_norm = (accelerator.clip_grad_norm_(model.parameters(), cfg.optim.clip_norm)
                         if cfg.optim.clip_norm > 0 else None)
            loss_value = output.loss.item()
            if not math.isfinite(loss_value) or (grad_norm is not None and not torch.isfinite(grad_norm)):
                optimizer.zero_grad(set_to_none=True)
                if cfg.nan_policy == "stop":
                    raise HanlmError(
                        f"non-finite loss or gradient at step {step + 1} (loss {loss_value}); "
                        "stopped without saving it (lower --optim.lr, or --nan-policy skip)"
                    )
                logger.warning("non-finite loss at step %d: step skipped", step + 1)
                step += 1
                progress.update(1)
                continue
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            progress.update(1)
            if on_step is not None:
                on_step(step, accelerator.unwrap_model(model))

            if step % cfg.log_every == 0 or step == cfg.max_steps:
                metrics = window.metrics(accelerator)
                metrics.update(lr=scheduler.get_last_lr()[0],
                               grad_norm=float(grad_norm) if grad_norm is not None else None,
                               elapsed_seconds=time.time() - started)
                log.log(step, metrics)
                progress.set_postfix(loss=f"{metrics['loss']:.3f}", mlm_acc=f"{metrics['mlm_accuracy']:.3f}")
                window.reset()
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
                run_eval(step)
            out_of_time = cfg.max_minutes is not None and time.time() - started > cfg.max_minutes * 60
            stop_now = all_agree(accelerator, stop.signal is not None or out_of_time)
            if step % cfg.save_every == 0 or stop_now:
                save(step)
                last_saved = step
            if stop_now:
                if stop.signal is not None:
                    progress.close()
                    log.close()
                    raise KeyboardInterrupt
                logger.info("time budget of %.1f minutes reached at step %d", cfg.max_minutes, step)
                break
    progress.close()
    eval_metrics = run_eval(step)
    if last_saved != step:
        save(step, {"eval": eval_metrics})
    if accelerator.is_main_process:
        summary = {"step": step, "eval": eval_metrics, "seconds": round(time.time() - started, 1)}
        atomic.write_text(out / "final_metrics.json", json.dumps(summary, indent=2))
    log.close()
    accelerator.wait_for_everyone()
    logger.info("finished at step %d -> %s", step, out)
    return out


def _fmt(metrics: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
