"""`hanlm pretrain`: BERT (MLM + NSP) on built shards, through Accelerate.

One process or many (`torchrun` / `accelerate launch`, CPU gloo or GPUs, DeepSpeed through an
Accelerate config): the loop below is the same. A step reads top to bottom: micro-batches ->
forward/backward (gradient sync only on the last) -> clip -> optimizer -> log / evaluate /
checkpoint. Checkpoints hold everything needed to continue bit-identically: weights, optimizer
state, RNG states, the step (which fixes the data position, see hanlm/data/batches.py) and the
training seconds (which the learning rate follows under a time budget).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from hanlm import __version__, atomic
from hanlm import config as config_lib
from hanlm.data.batches import BatchSchedule, Collator, micro_batches, sample_lengths
from hanlm.data.objective import resolve_objective
from hanlm.data.shards import ShardReader, read_meta
from hanlm.errors import HanlmError
from hanlm.model import objectives
from hanlm.model.bert import PretrainingModel, set_dropout
from hanlm.model.presets import PRESETS
from hanlm.tokenizer import KoreanTokenizer
from hanlm.tokenizer import format as tokenizer_files
from hanlm.train.checkpoint import Checkpoint, latest_checkpoint, save_training_checkpoint
from hanlm.train.config import PRETRAIN_LR, PretrainConfig, default_lr, format_lr
from hanlm.train.engine import (
    RUN_FILE,
    Clock,
    Hooks,
    Runtime,
    budget_spent,
    format_metrics,
    prepare_run_dir,
    progress_bar,
    schedule_budget,
)
from hanlm.train.log import MetricsLog
from hanlm.train.optim import Schedule, build_optimizer
from hanlm.train.pretrain_metrics import TrainWindow, evaluate, unigram_log_probs
from hanlm.train.stop import StopRequested, all_agree_each

__all__ = ["PretrainConfig", "pretrain", "batch_schedule", "build_model", "init_mlm_bias",
           "resolve_lr"]

logger = logging.getLogger(__name__)


def batch_schedule(cfg: PretrainConfig, world: int = 1) -> BatchSchedule:
    return BatchSchedule(micro=cfg.batch_size, accum=cfg.grad_accum, world=world,
                         ramp_steps=cfg.batch_ramp_steps, ramp_start=cfg.batch_ramp_start)


def _run_identity(cfg: PretrainConfig, meta: dict, objective: str) -> dict:
    """What must match for --resume to continue a run."""
    return {
        "data": meta["tokenizer_fingerprint"] + ":" + config_lib.fingerprint(meta["splits"]),
        "preset": cfg.preset,
        "seed": cfg.seed,
        "objective": objective,
    }


def _write_run_files(out: Path, cfg: PretrainConfig, identity: dict, meta: dict, tok_dir: Path,
                     model: torch.nn.Module) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # The objective as resolved (from the data when not given), as the lr is: the file says
    # what ran.
    config_lib.save(replace(cfg, objective=identity["objective"]), out / "config.yaml")
    if not (out / "tokenizer").is_dir():
        with atomic.directory(out / "tokenizer") as tmp:
            tokenizer_files.copy_files(tok_dir, tmp)
    run = {
        "hanlm_version": __version__,
        "identity": identity,
        "data": str(Path(cfg.data).resolve()),
        "data_meta": {k: meta[k] for k in ("documents", "chars", "max_len", "splits", "settings")},
        "objective": identity["objective"],
        **objectives.model_configs(model),
    }
    atomic.write_text(out / RUN_FILE, json.dumps(run, indent=2, ensure_ascii=False, default=str))


def build_model(cfg: PretrainConfig, tok: KoreanTokenizer, meta: dict,
                unigram: torch.Tensor, objective: str = "bert") -> torch.nn.Module:
    """The model a run starts from: new (its MLM bias at the token frequencies `unigram`, unless
    --mlm-bias-init zeros) or --init-from, with the pretraining dropout set."""
    model = _new_or_loaded_model(cfg, tok, meta, objective)
    if not cfg.init_from and cfg.mlm_bias_init == "unigram":
        init_mlm_bias(model, unigram)
    set_dropout(model, cfg.dropout)
    return model


def init_mlm_bias(model: torch.nn.Module, log_probs: torch.Tensor) -> None:
    """Start the MLM output bias at the log frequencies of the tokens it will predict.

    Hugging Face starts it at zeros, so a new BERT predicts every token as likely (loss ln V)
    and spends its first few hundred optimizer steps learning token frequencies into the bias
    (the early plateau, docs/RESULTS.md). A masked token is drawn from the training tokens, so
    their log frequencies are the best context-free prediction; starting there is the usual
    "initialise the output to the prior" advice. The model stays a stock BertForPreTraining
    (the bias is a normal parameter, tied to the decoder's)."""
    bias = objectives.mlm_output_bias(model)
    with torch.no_grad():
        bias.copy_(log_probs.to(bias.dtype))


def _new_or_loaded_model(cfg: PretrainConfig, tok: KoreanTokenizer, meta: dict,
                         objective: str) -> torch.nn.Module:
    if cfg.init_from:
        if objective == "electra":
            raise HanlmError("--init-from continues a BERT (objectives bert and mlm); ELECTRA "
                             "starts from scratch")
        return PretrainingModel(_load_init_from(cfg, tok, meta, objective))
    if meta["max_len"] > 512:
        logger.info("data max_len %d: the new model gets %d positions", meta["max_len"], meta["max_len"])
    return objectives.new_model(
        objective, cfg.preset, vocab_size=tok.vocab_size, max_positions=max(512, meta["max_len"]),
        pad_id=tok.pad_id, dropout=cfg.export_dropout, seed=cfg.seed,
        # Measured on 2 Xeon cores (docs/BENCHMARKS.md, bench/levers.py): at seq 128 the eager
        # attention is as fast as SDPA on padded batches and ~12% faster on unpadded ones.
        attn_implementation="sdpa" if torch.cuda.is_available() else "eager",
        generator_ratio=cfg.generator_ratio, disc_weight=cfg.disc_weight)


def _load_init_from(cfg: PretrainConfig, tok: KoreanTokenizer, meta: dict, objective: str):
    """The --init-from model, refused when it cannot read this data: not a BERT, pickle
    weights (unless --trust-pickle: converted once to safetensors), another tokenizer, or fewer
    positions than the data's sequences.

    The model's tokenizer is its ``tokenizer.json`` or, as klue/bert-base ships it, its
    ``vocab.txt``: `hanlm data build --tokenizer MODEL_DIR` builds the data with that very one.
    """
    from transformers import BertForMaskedLM, BertForPreTraining

    from hanlm.model.weights import check_weights

    directory = Path(cfg.init_from)
    if not (directory / "config.json").is_file():
        raise HanlmError("not a model directory (no config.json)", path=str(directory))
    model_type = _model_type(directory)
    if model_type != "bert":
        raise HanlmError(f"--init-from continues a BERT model; this one is "
                         f"{model_type or 'of no model_type'}", path=str(directory))
    safe = check_weights(directory, cfg.trust_pickle)
    if any((directory / name).is_file() for name in (tokenizer_files.TOKENIZER_FILE,
                                                     tokenizer_files.VOCAB_FILE)):
        theirs = KoreanTokenizer.load(directory).fingerprint
        if theirs != tok.fingerprint:
            raise HanlmError(
                f"the model's tokenizer ({theirs}) is not the one the data was built with "
                f"({tok.fingerprint}); rebuild the data with --tokenizer {directory}",
                path=str(directory),
            )
    else:
        logger.warning("%s has no tokenizer files: only the vocabulary size is checked "
                       "against the data's tokenizer", directory)
    model_class = BertForPreTraining if objective == "bert" else BertForMaskedLM
    bert = model_class.from_pretrained(directory, use_safetensors=safe)
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


def _model_type(directory: Path) -> str | None:
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HanlmError(f"unreadable config.json: {e}", path=str(directory)) from None
    return config.get("model_type") if isinstance(config, dict) else None


def resolve_lr(cfg: PretrainConfig, objective: str, model: torch.nn.Module,
               resumed_config: Path | None = None) -> tuple[PretrainConfig, str]:
    """`cfg` with its peak learning rate set, and where the rate came from: --lr; else, resuming,
    the run's own from its config.yaml (a run keeps its rate even if a later hanlm changes a
    default); else the model size's default, `default_lr`. The resolved rate is what config.yaml
    records, so a resume, or anyone reading the run, sees the rate it used."""
    if cfg.optim.lr is not None:
        return cfg, "given"
    saved = _saved_lr(resumed_config) if resumed_config is not None else None
    if saved is not None:
        lr, source = saved, "the resumed run's"
    else:
        size, note = _size_preset(cfg, model)
        lr = default_lr(size, objective)
        by_objective = f" with {objective}" if lr != PRETRAIN_LR[size] else ""
        source = f"the {size} preset's default{by_objective}{note}"
    return replace(cfg, optim=replace(cfg.optim, lr=lr)), source


def _size_preset(cfg: PretrainConfig, model: torch.nn.Module) -> tuple[str, str]:
    """The preset whose rate fits the model: --preset's, but --init-from loads a model of its own
    size (klue/bert-base is base whatever --preset says), so then the preset of that shape."""
    if not cfg.init_from:
        return cfg.preset, ""
    shape = (model.config.num_hidden_layers, model.config.hidden_size)
    for name, preset in PRESETS.items():
        if (preset.layers, preset.hidden) == shape:
            return name, ", the --init-from model's size"
    return cfg.preset, (f"; the --init-from model ({shape[0]} layers x {shape[1]}) has no "
                        "preset's size: give --lr")


def _saved_lr(path: Path) -> float | None:
    if not path.is_file():
        return None
    lr = config_lib.read_yaml(path).get("lr")
    return None if lr is None else float(lr)


@dataclass
class _Run:
    """What the loop works with, set up by `_start`."""

    out: Path
    runtime: Runtime
    model: torch.nn.Module  # prepared by Accelerate
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    train_reader: ShardReader
    eval_reader: ShardReader
    lengths: object
    collate: Collator
    unigram: torch.Tensor
    checkpoint: Checkpoint | None
    objective: str

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.runtime.accelerator.unwrap_model(self.model)


def _start(cfg: PretrainConfig) -> _Run:
    """Read the data, check the run directory, build or restore the model and optimizer."""
    meta = read_meta(cfg.data)
    tok_dir = Path(cfg.data) / "tokenizer"
    tok = KoreanTokenizer.load(tok_dir)
    if meta["tokenizer_fingerprint"] != tok.fingerprint:
        raise HanlmError("the tokenizer copy in the data directory does not match its meta.json",
                         path=str(tok_dir))
    objective = resolve_objective(cfg.objective, meta, cfg.data)
    train_reader = ShardReader(cfg.data, "train")
    unigram = unigram_log_probs(train_reader, tok.vocab_size, tok.special_ids)
    model = build_model(cfg, tok, meta, unigram, objective)
    out = Path(cfg.out)
    runtime = Runtime(cfg, model.config.hidden_size, resume_dir=out if cfg.resume else None)
    acc = runtime.accelerator
    identity = _run_identity(cfg, meta, objective)
    resuming = prepare_run_dir(out, identity, cfg, acc.is_main_process)
    acc.wait_for_everyone()
    cfg, lr_source = resolve_lr(cfg, objective, model, out / "config.yaml" if resuming else None)
    logger.info("lr %s (%s)", format_lr(cfg.optim.lr), lr_source)
    optimizer = build_optimizer(model, cfg.optim)
    checkpoint = latest_checkpoint(out) if resuming else None
    if resuming and checkpoint is None:
        logger.warning("--resume: no checkpoint in %s yet, starting from step 0", out)
    if acc.is_main_process:
        _write_run_files(out, cfg, identity, meta, tok_dir, model)
    acc.wait_for_everyone()
    prepared, optimizer = runtime.prepare(model, optimizer)
    if checkpoint is not None:
        checkpoint.restore(objectives.weights_module(model), optimizer)
        logger.info("resuming from %s (step %d)", checkpoint.path, checkpoint.step)
    else:
        torch.manual_seed(cfg.seed + acc.process_index)
    collate = Collator(pad_id=tok.pad_id, mask_id=tok.mask_id, special_ids=tok.special_ids,
                       vocab_size=tok.vocab_size, masking=cfg.masking, seed=cfg.seed)
    return _Run(out=out, runtime=runtime, model=prepared, optimizer=optimizer,
                schedule=Schedule(cfg.optim, cfg.max_steps, schedule_budget(cfg)),
                train_reader=train_reader, eval_reader=ShardReader(cfg.data, "eval"),
                lengths=sample_lengths(train_reader), collate=collate, unigram=unigram,
                checkpoint=checkpoint, objective=objective)


def pretrain(cfg: PretrainConfig, hooks: Hooks | None = None) -> Path:
    """Train as `cfg` says; returns the run directory. See `Hooks` for what `hooks` gets."""
    hooks = hooks or Hooks()
    run = _start(cfg)
    acc = run.runtime.accelerator
    step = run.checkpoint.step if run.checkpoint else 0
    clock = Clock(hooks.now, run.checkpoint.elapsed_seconds if run.checkpoint else 0.0)
    world, rank = acc.num_processes, acc.process_index
    schedule = batch_schedule(cfg, world)
    _log_start(cfg, run, schedule, world)
    log = MetricsLog(run.out, enabled=acc.is_main_process, tensorboard=cfg.tensorboard,
                     resume_step=step if cfg.resume else None)

    def save(at: int, extra: dict | None = None) -> None:
        acc.wait_for_everyone()
        if acc.is_main_process:
            save_training_checkpoint(
                run.out, at, module=objectives.weights_module(run.unwrapped), optimizer=run.optimizer,
                elapsed=clock.elapsed(), precision=run.runtime.choice.precision,
                loop={"samples_seen": schedule.start(at)}, keep=cfg.keep_checkpoints,
                extra={"preset": cfg.preset, **(extra or {})})
        acc.wait_for_everyone()

    last_saved = step if run.checkpoint is not None else -1
    window = TrainWindow()
    run.model.train()
    progress = progress_bar(cfg, total=cfg.max_steps, initial=step, desc="pretrain",
                            is_main=acc.is_main_process)
    hooks.step(step, run.unwrapped)
    with StopRequested() as stop, progress:
        while step < cfg.max_steps:
            batches = (run.collate([run.train_reader[int(i)] for i in idx], idx, epochs)
                       for idx, epochs in micro_batches(
                           step, schedule, rank=rank, n=len(run.train_reader), seed=cfg.seed,
                           lengths=run.lengths, bucket_steps=cfg.length_buckets))
            for output, batch in run.runtime.forward_backward(run.model, batches, cfg.grad_accum):
                window.add(output, batch)
            stepped = run.runtime.optimizer_step(
                run.model, run.optimizer, schedule=run.schedule, step=step,
                elapsed=clock.elapsed(), loss=output.loss.item(), training=cfg)
            step += 1
            progress.update(1)
            if stepped is not None:
                hooks.step(step, run.unwrapped)
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                metrics = {**window.metrics(acc), **(stepped or {}),
                           "elapsed_seconds": clock.elapsed()}
                log.log(step, metrics)
                progress.set_postfix(loss=f"{metrics['loss']:.3f}",
                                     mlm_acc=f"{metrics['mlm_accuracy']:.3f}")
                window.reset()
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
                _evaluate(cfg, run, log, step)
            # Agreed on separately: a signal that reached one process must interrupt all of them
            # (not let the others finish as if out of time and wait for it at the last barrier).
            interrupted, out_of_time = all_agree_each(acc, stop.signal is not None,
                                                      budget_spent(cfg, clock))
            stop_now = interrupted or out_of_time
            if step % cfg.save_every == 0 or stop_now:
                save(step)
                last_saved = step
            if interrupted:
                log.close()
                raise KeyboardInterrupt
            if stop_now:
                logger.info("time budget of %.1f minutes reached at step %d", cfg.max_minutes, step)
                break
    eval_metrics = _evaluate(cfg, run, log, step)
    if last_saved != step:
        save(step, {"eval": eval_metrics})
    if acc.is_main_process:
        summary = {"step": step, "eval": eval_metrics, "seconds": round(clock.elapsed(), 1),
                   "precision": run.runtime.choice.precision}
        atomic.write_text(run.out / "final_metrics.json", json.dumps(summary, indent=2))
    log.close()
    acc.wait_for_everyone()
    logger.info("finished at step %d -> %s", step, run.out)
    return run.out


def _evaluate(cfg: PretrainConfig, run: _Run, log: MetricsLog, step: int) -> dict | None:
    if len(run.eval_reader) == 0:
        return None
    # In fp32 whatever the training precision, so evaluations compare across runs.
    metrics = evaluate(run.unwrapped, run.eval_reader, run.collate, batch_size=cfg.batch_size,
                       batches=cfg.eval_batches, device=run.runtime.device,
                       unigram_log_probs=run.unigram)
    log.log(step, metrics, split="eval")
    logger.info("step %d eval: %s", step, format_metrics(metrics))
    return metrics


def _log_start(cfg: PretrainConfig, run: _Run, schedule: BatchSchedule, world: int) -> None:
    logger.info(
        "pretraining %s with objective %s (%.1fM parameters) on %d instances: %d steps of %d "
        "sequences (%d x %d x %d)%s%s", cfg.preset, run.objective,
        sum(p.numel() for p in run.model.parameters()) / 1e6, len(run.train_reader),
        cfg.max_steps, schedule.size(cfg.max_steps), cfg.batch_size, cfg.grad_accum, world,
        f", growing from {schedule.size(0)} over the first {cfg.batch_ramp_steps} steps"
        if cfg.batch_ramp_steps else "",
        f", within {cfg.max_minutes:g} minutes ("
        f"{'the schedule follows time' if cfg.time_schedule else 'a stop only'})"
        if cfg.max_minutes else "")
