"""The `finetune`, `evaluate` and `predict` verbs: glue between a task, a model and the loop.

``finetune`` writes a run directory::

    OUT/config.yaml         the resolved configuration (readable back with --config)
    OUT/metrics.jsonl       training loss and every dev evaluation
    OUT/metrics.json        the best dev scores and run facts (steps, time)
    OUT/predictions.jsonl   dev predictions of the best model, mapped to the original text
    OUT/checkpoints/        resumable checkpoints (--resume)
    OUT/model/              the best model in Hugging Face format, with a model card
    OUT/skipped.jsonl       records skipped under --on-error skip (only then)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed

from hanlm import atomic, config
from hanlm.atomic import write_skipped
from hanlm.errors import HanlmError
from hanlm.provenance import command_line
from hanlm.tasks.base import Feature, ReadOptions, Task
from hanlm.tasks.config import DataOptions, EvaluateConfig, FinetuneConfig, PredictConfig
from hanlm.tasks.examples import held_out_part, load_examples, read_examples
from hanlm.tasks.loop import Evaluation, predict_outputs, process_state, train
from hanlm.tasks.modeling import (
    load_model,
    model_card,
    resolve_model_dir,
    save_model_dir,
    task_kwargs_from_model,
)
from hanlm.tasks.registry import customize, get_task
from hanlm.tasks.tokenizer_loading import load_tokenizer
from hanlm.tokenizer.kiwi_fast import KiwiTokenizerFast
from hanlm.tokenizer.pretokenize import KIWI_USAGE
from hanlm.train.engine import RUN_FILE, Hooks, prepare_run_dir
from hanlm.train.precision import decide_precision, require_device_for

logger = logging.getLogger(__name__)


def dropout_kwargs(dropout: float | None) -> dict[str, float]:
    """`from_pretrained` overrides that set a BERT's dropout (the classifier's follows the hidden
    one unless the config names its own `classifier_dropout`)."""
    if dropout is None:
        return {}
    if dropout >= 1:
        raise HanlmError(f"--dropout {dropout:g}: a dropout probability must be below 1")
    return {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}


# ------------------------------------------------------------------------------ shared steps


def build_task(name: str, options: DataOptions, labels: tuple[str, ...] | None = None) -> Task:
    task = get_task(name)
    return customize(
        task, text=options.text_column, text_pair=options.text_pair_column,
        label=options.label_column, id=options.id_column,
        labels=labels if labels is not None else
        (tuple(options.labels) if options.labels else None),
        format=None if options.format == "auto" else options.format, stride=options.stride,
    )


def add_special_tokens(task: Task, tokenizer: Any, model: Any) -> None:
    """Register the task's marker tokens (KLUE-RE) and grow the embeddings to match."""
    tokens = task.special_tokens()
    vocab = tokenizer.get_vocab()
    if tokens and any(t not in vocab for t in tokens):
        tokenizer.add_special_tokens({"extra_special_tokens": tokens},
                                     replace_extra_special_tokens=False)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))


def run_inference(task: Task, model: Any, tokenizer: Any, examples: list[Any],
                  features: list[Feature], batch_size: int, progress: bool = False,
                  accelerator: Any = None, precision: str = "fp32") -> list[dict]:
    outputs = predict_outputs(model, features, batch_size=batch_size,
                              pad_id=tokenizer.pad_token_id, progress=progress,
                              accelerator=accelerator, precision=precision)
    return task.decode(outputs, features, examples)


def inference_precision(requested: str, model: Any) -> str:
    """What `evaluate` and `predict` compute in: `--precision` as training reads it (`auto`:
    the same measurement, the same log line), fp16 refused without a GPU, where autocast
    would run it emulated."""
    choice = decide_precision(requested, model.config.hidden_size)
    require_device_for(choice.precision, next(model.parameters()).device)
    return choice.precision


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ------------------------------------------------------------------------------ finetune


def finetune(cfg: FinetuneConfig, hooks: Hooks | None = None) -> int:
    """Fine-tune as `cfg` says (see the module docstring for what the run directory holds)."""
    out = Path(cfg.out)
    model_overrides = {**dropout_kwargs(cfg.dropout), "ignore_mismatched_sizes": True}
    processes = process_state()
    identity = {"task": cfg.task, "model": str(cfg.model), "train": str(cfg.train)}
    resuming = prepare_run_dir(out, identity, cfg, processes.is_main_process)
    processes.wait_for_everyone()  # every process has checked before the main one writes
    opts = cfg.options
    read = ReadOptions(encoding=opts.encoding, on_error=opts.on_error)
    task = build_task(cfg.task, opts)
    train_ex, dev_ex, task = _train_and_dev(task, cfg, read)

    model_dir = resolve_model_dir(cfg.model)
    tokenizer = load_tokenizer(model_dir)
    set_seed(cfg.seed)
    model = load_model(model_dir, task.head, {**task.model_kwargs(), **model_overrides},
                       trust_pickle=opts.trust_pickle, max_len=opts.max_len)
    add_special_tokens(task, tokenizer, model)
    train_features = task.encode(train_ex, tokenizer, opts.max_len)
    dev_features = task.encode(dev_ex, tokenizer, opts.max_len) if dev_ex else []
    logger.info("%d training features from %d examples", len(train_features), len(train_ex))

    if processes.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        config.save(cfg, out / "config.yaml")
        atomic.write_text(out / RUN_FILE, json.dumps({"identity": identity}, indent=2))
        write_skipped(read.skipped, out / "skipped.jsonl")

    def evaluate(m: Any, accelerator: Any) -> Evaluation:
        predictions = run_inference(task, m, tokenizer, dev_ex, dev_features,
                                    cfg.eval_batch_size, accelerator=accelerator)
        return Evaluation(task.score(predictions, dev_ex), predictions)

    def on_best(m: Any, evaluation: Evaluation | None, step: int, total: int) -> None:
        card = model_card(task=task, base_model=str(cfg.model), train_file=cfg.train,
                          dev_file=cfg.dev, split=opts.split_dev,
                          metrics=evaluation.metrics if evaluation else None, step=step,
                          total_steps=total, command=command_line("hanlm.tasks.run (Python API)"),
                          tokenizer_usage=KIWI_USAGE if isinstance(tokenizer, KiwiTokenizerFast) else "")
        save_model_dir(m, tokenizer, out / "model", card)
        if evaluation is not None:
            atomic.write_jsonl(out / "predictions.jsonl", evaluation.predictions)

    start = time.perf_counter()
    result = train(
        model, train_features, cfg, run_dir=out, pad_id=tokenizer.pad_token_id,
        evaluate=evaluate if dev_ex else None, main_metric=task.main_metric, on_best=on_best,
        resume=resuming, extra_state={"task": task.name}, hooks=hooks,
    )
    summary = {
        "task": task.name, "main_metric": task.main_metric,
        "best_step": result.state.best_step, "steps": result.state.step,
        "total_steps": result.total_steps, "stopped_early": result.state.stopped_early,
        "train_seconds": round(result.seconds, 1),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "train_examples": len(train_ex), "dev_examples": len(dev_ex),
        "split_dev": opts.split_dev, "skipped": len(read.skipped),
        "dev": result.state.best,
    }
    if processes.is_main_process:
        atomic.write_text(out / "metrics.json", json.dumps(summary, indent=2, ensure_ascii=False))
        print(json.dumps(summary, ensure_ascii=False))
    return 0


def _train_and_dev(task: Task, cfg: FinetuneConfig, read: ReadOptions
                   ) -> tuple[list[Any], list[Any], Task]:
    """Training and dev examples, and the task with its label set fixed.

    Labels not given by the task or --labels are inferred from the training file, so the dev
    file is read after: a dev label outside the training labels is then an error.
    """
    opts = cfg.options
    examples = read_examples(task, cfg.train, read)
    labels = task.infer_labels(examples)
    if labels != task.labels:
        logger.info("labels inferred from %s: %s", cfg.train, ", ".join(labels))
        task = build_task(cfg.task, opts, labels=labels)
    train_ex, dev_ex = load_examples(task, cfg.train, dev=cfg.dev, split_dev=opts.split_dev,
                                     limit=opts.limit, read=read, examples=examples)
    return train_ex, dev_ex, task


# ------------------------------------------------------------------------------ evaluate


def _load_finetuned(name: str, model_path: str, opts: DataOptions) -> tuple[Task, Any, Any]:
    """The task configured with the labels the model was fine-tuned on, the model, tokenizer."""
    model_dir = resolve_model_dir(model_path)
    task = build_task(name, opts)
    stored = task_kwargs_from_model(model_dir)
    regression = stored["problem_type"] == "regression"
    if regression != getattr(task, "regression", False):
        kinds = {True: "regression", False: "classification"}
        raise HanlmError(f"the model was fine-tuned for {kinds[regression]}; task '{name}' is "
                         f"{kinds[not regression]}", path=str(model_dir))
    if task.model_kwargs() and not regression:
        labels = stored["labels"]
        if task.labels and set(task.labels) != set(labels):
            raise HanlmError(f"the model was fine-tuned for labels {', '.join(labels)}, not the "
                             f"labels of task '{name}' ({', '.join(task.labels)})",
                             path=str(model_dir))
        task = build_task(name, opts, labels=labels)
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, task.head, {}, trust_pickle=opts.trust_pickle,
                       max_len=opts.max_len, trained_head=True)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise HanlmError("the tokenizer has more tokens than the model's embeddings",
                         path=str(model_dir))
    return task, model.to(_device()), tokenizer


def evaluate(cfg: EvaluateConfig) -> int:
    opts = dataclasses.replace(cfg.options, split_dev=_evaluation_split(cfg))
    task, model, tokenizer = _load_finetuned(cfg.task, cfg.model, opts)
    read = ReadOptions(encoding=opts.encoding, on_error=opts.on_error)
    examples = held_out_part(task, read_examples(task, cfg.data, read), opts.split_dev,
                             opts.limit)
    features = task.encode(examples, tokenizer, opts.max_len)
    precision = inference_precision(cfg.precision, model)
    start = time.perf_counter()
    predictions = run_inference(task, model, tokenizer, examples, features, cfg.batch_size,
                                progress=True, precision=precision)
    scores = task.score(predictions, examples)
    output = Path(cfg.output) if cfg.output else default_metrics_path(cfg.model, task.name,
                                                                      cfg.data)
    result = {"task": task.name, "data": cfg.data, "model": cfg.model,
              "split_dev": opts.split_dev, "examples": len(examples),
              "skipped": len(read.skipped), "precision": precision,
              "seconds": round(time.perf_counter() - start, 1), "metrics": scores}
    atomic.write_text(output, json.dumps(result, indent=2, ensure_ascii=False))
    logger.info("metrics written to %s", output)
    write_skipped(read.skipped, output.with_suffix(".skipped.jsonl"))
    if cfg.predictions:
        atomic.write_jsonl(Path(cfg.predictions), predictions)
    print(json.dumps(result, ensure_ascii=False))
    return 0


def default_metrics_path(model: str | Path, task: str, data: str | Path) -> Path:
    """Where `evaluate` writes its metrics without --output: ``metrics-TASK-FILE.json`` in the
    run directory when `model` is a finetune run (or its ``model/``), else next to the model
    directory, so scores stay with the model they describe rather than in the working
    directory."""
    model_dir = Path(os.path.abspath(resolve_model_dir(model)))  # "." has a parent too
    return model_dir.parent / f"metrics-{task}-{Path(data).stem}.json"


def _evaluation_split(cfg: EvaluateConfig) -> str | None:
    """--split-dev, else the fine-tuning run's own when it split this very --data file.

    Scoring the whole file would mix in the examples the model was trained on. The run is
    found through ``RUN/model`` (the layout `finetune` writes) and its ``RUN/config.yaml``.
    """
    given = cfg.options.split_dev
    model_dir = resolve_model_dir(cfg.model)
    run_config = model_dir.parent / "config.yaml"
    if given is not None or model_dir.name != "model" or not run_config.is_file():
        return given
    saved = config.read_yaml(run_config)
    split, train = saved.get("split_dev"), saved.get("train")
    if split is None:
        return None
    if train is None or not _same_file(train, cfg.data):
        logger.info("the run split %s with --split-dev %s; %s is another file: scoring all of "
                    "it", train, split, cfg.data)
        return None
    if cfg.whole_file:
        logger.info("--whole-file: scoring all of %s, the held-out part and the examples the "
                    "run trained on", cfg.data)
        return None
    logger.info("--split-dev %s from %s: scoring the part of %s that the run held out "
                "(--whole-file scores all of it)", split, run_config, cfg.data)
    return split


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).samefile(b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


# ------------------------------------------------------------------------------ predict


def predict(cfg: PredictConfig) -> int:
    opts = cfg.options
    task, model, tokenizer = _load_finetuned(cfg.task, cfg.model, opts)
    read = ReadOptions(encoding=opts.encoding, on_error=opts.on_error, require_labels=False)
    examples = held_out_part(task, read_examples(task, cfg.input, read), opts.split_dev,
                             opts.limit)
    features = task.encode(examples, tokenizer, opts.max_len)
    precision = inference_precision(cfg.precision, model)
    predictions = run_inference(task, model, tokenizer, examples, features, cfg.batch_size,
                                progress=True, precision=precision)
    output = Path(cfg.output)
    atomic.write_jsonl(output, predictions)
    write_skipped(read.skipped, output.with_suffix(".skipped.jsonl"))
    print(json.dumps({"task": task.name, "input": cfg.input, "output": str(output),
                      "predictions": len(predictions), "skipped": len(read.skipped),
                      "precision": precision}, ensure_ascii=False))
    return 0
