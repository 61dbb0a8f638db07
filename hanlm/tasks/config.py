"""Settings of the `finetune`, `evaluate` and `predict` verbs.

A fine-tuning run is a `FinetuneTrainingConfig` (the training surface it shares with
`hanlm pretrain`, hanlm/train/config.py) plus the task and its data. This module imports no
torch: the CLI reads it to print `--help` instantly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hanlm.config import opt
from hanlm.train.config import PRECISION_HELP, FinetuneTrainingConfig, Precision


@dataclass
class DataOptions:
    """How to read the data files (shared by finetune, evaluate and predict)."""

    text_column: str | None = opt(None, "column/field holding the text (sentence tasks)")
    text_pair_column: str | None = opt(None, "column/field holding the second text of a pair")
    label_column: str | None = opt(None, "column/field holding the label")
    id_column: str | None = opt(None, "column/field holding an example id")
    labels: list[str] | None = opt(None, "the label set (default: the task's, or inferred "
                                   "from the training file)")
    format: Literal["auto", "csv", "tsv", "json", "jsonl"] = opt(
        "auto", "file format (auto: from the extension)")
    encoding: str = opt("utf-8", "text encoding of the data files (e.g. cp949)")
    on_error: Literal["raise", "skip"] = opt(
        "raise", "a bad record stops the run (raise) or is skipped, counted and listed (skip)")
    max_len: int = opt(128, "maximum tokens per input (MRC: per window)", min=8)
    stride: int | None = opt(None, "MRC, NER: overlapping tokens between the windows of a "
                             "long context or sentence (default: max_len / 4)", min=0)
    split_dev: str | None = opt(None, "SEED:FRACTION: split the one labelled file at run time "
                                "(by article/premise) into train and a held-out FRACTION")
    limit: int | None = opt(None, "use only the first N examples of each file (or split part) "
                            "for quick runs", min=1)
    trust_pickle: bool = opt(False, "allow pickle (pytorch_model.bin) weights, converted once to "
                             "model.safetensors beside them")
    allow_download: bool = opt(False, "fetch --model from the Hugging Face Hub when it is not a "
                               "local directory (hanlm is offline otherwise)")


@dataclass(kw_only=True)
class FinetuneConfig(FinetuneTrainingConfig):
    task: str = opt(help="task name (nsmc, klue-ynat, klue-nli, klue-sts, kornli, korsts, "
                    "klue-ner, klue-re, korquad, klue-mrc, csv)")
    train: str = opt(help="training file (with --split-dev: the file to split)")
    model: str = opt(help="a BERT directory in Hugging Face format")
    out: str = opt(help="run directory to write")
    dev: str | None = opt(None, "dev file (evaluated periodically; selects the best model)")
    dropout: float | None = opt(
        None, "dropout of hidden states and attention while fine-tuning (default: the model's "
        "config; BERT fine-tunes with 0.1, and a model pretrained without dropout may carry 0)",
        min=0)
    options: DataOptions = opt(factory=DataOptions, flatten=True)


@dataclass
class EvaluateConfig:
    task: str = opt(help="task name")
    data: str = opt(help="labelled file to score (with --split-dev: its held-out part; by "
                    "default the run's own --split-dev when --data is the file it split)")
    model: str = opt(help="fine-tuned model directory (or a finetune run directory)")
    whole_file: bool = opt(False, "score all of --data even when the run split it with "
                           "--split-dev")
    output: str | None = opt(None, "write the metrics JSON here (default: "
                             "metrics-TASK-FILE.json in the run directory when --model is a "
                             "finetune run, else next to the model directory)")
    predictions: str | None = opt(None, "also write predictions (JSONL) here")
    batch_size: int = opt(64, "batch size", min=1)
    # Training's flag, training's meaning: `auto` takes the same measurement, logged the same.
    precision: Precision = opt("auto", PRECISION_HELP)
    options: DataOptions = opt(factory=DataOptions, flatten=True)


@dataclass
class PredictConfig:
    task: str = opt(help="task name")
    model: str = opt(help="fine-tuned model directory (or a finetune run directory)")
    input: str = opt(help="file in the task's format; labels may be absent")
    output: str = opt(help="predictions JSONL to write")
    batch_size: int = opt(64, "batch size", min=1)
    # Training's flag, training's meaning: `auto` takes the same measurement, logged the same.
    precision: Precision = opt("auto", PRECISION_HELP)
    options: DataOptions = opt(factory=DataOptions, flatten=True)
