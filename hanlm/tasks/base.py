"""What every task shares: the `Task` protocol, encoded `Feature`s and the read-error policy.

A task is a small frozen dataclass of pure functions (see DESIGN.md "Tasks"):

- ``read(path, options)``: an official file, unchanged, to examples;
- ``encode(examples, tokenizer, max_len)``: examples to `Feature`s that keep character offsets;
- ``decode(outputs, features, examples)``: model outputs to predictions in the original text
  (the examples are passed too: features hold offsets, the examples hold the text they index);
- ``score(predictions, examples)``: the official metric (``hanlm.tasks.metrics``);
- ``head``: which Hugging Face auto class loads the model (``modeling.HEADS``), and
  ``model_kwargs()`` its ``from_pretrained`` arguments (num_labels, id2label, label2id);
- ``special_tokens()``: tokens the task adds to the tokenizer (KLUE-RE's entity markers);
- ``group_of(example)``: what ``--split-dev`` keeps together (a KorQuAD article).

Dataset specifics (columns, label lists) are fields of the task object, so a new dataset of an
existing family is one registry entry (``hanlm/tasks/registry.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from hanlm.errors import HanlmError, Skipped, reject

logger = logging.getLogger(__name__)

Head = Literal["sequence-classification", "token-classification", "question-answering"]

HEAD_PIPELINES: dict[str, str] = {
    "sequence-classification": "text-classification",
    "token-classification": "token-classification",
    "question-answering": "question-answering",
}


@dataclass
class Feature:
    """One encoded model input. ``targets`` are keyword arguments of the HF head's forward
    (``labels``, ``start_positions``/``end_positions``); ``offsets`` map tokens to characters
    of the example's text (``(0, 0)`` for special tokens)."""

    example_index: int
    input_ids: list[int]
    token_type_ids: list[int]
    targets: dict[str, Any] = field(default_factory=dict)
    offsets: list[tuple[int, int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)


Outputs = dict[str, np.ndarray]
"""One feature's model outputs (``logits``, or ``start_logits``/``end_logits``), unpadded."""


@runtime_checkable
class Task(Protocol):
    name: str
    head: Head
    main_metric: str
    labels: tuple[str, ...]

    def read(self, path: Path, options: ReadOptions) -> list[Any]: ...

    def infer_labels(self, examples: Sequence[Any]) -> tuple[str, ...]: ...

    def model_kwargs(self) -> dict[str, Any]: ...

    def special_tokens(self) -> list[str]: ...

    def encode(self, examples: Sequence[Any], tokenizer: Any, max_len: int) -> list[Feature]: ...

    def decode(
        self, outputs: Sequence[Outputs], features: Sequence[Feature], examples: Sequence[Any]
    ) -> list[dict[str, Any]]: ...

    def score(self, predictions: Sequence[dict], examples: Sequence[Any]) -> dict[str, float]: ...

    def group_of(self, example: Any) -> str: ...

    def describe(self) -> str: ...


# ------------------------------------------------------------------------------ read errors


@dataclass
class ReadOptions:
    """How to read a file. ``on_error='skip'`` records each bad record in ``skipped`` instead
    of stopping; nothing is ever dropped without a record. ``require_labels=False`` lets
    ``predict`` read files without gold labels."""

    encoding: str = "utf-8"
    on_error: Literal["raise", "skip"] = "raise"
    require_labels: bool = True
    skipped: list[Skipped] = field(default_factory=list)

    def reject(self, error: HanlmError) -> None:
        """Raise `error`, or, under ``--on-error skip``, record it and go on."""
        reject(error, self.on_error, self.skipped)


def records(options: ReadOptions, rows: Iterator[tuple[int, Any]], parse) -> list[Any]:
    """Apply `parse(line, row)` to every row; a HanlmError rejects that row (see ReadOptions)."""
    out = []
    for line, row in rows:
        try:
            out.append(parse(line, row))
        except HanlmError as e:
            options.reject(e)
    return out


def key_examples(examples: Sequence[Any], path: str | Path) -> None:
    """Give every example of one file a key of its own: predictions and scores are matched by it.

    An id read from the file is the key only where it is unique in that file. Official files may
    repeat ids: KorSTS numbers its pairs within each source file and year, so MSRvid 2012test and
    2012train both hold an id ``0004``. Then every example of the file is keyed by its line (by
    its position, ``record-N``, in a format without lines) and a log line says so; two records
    are never scored as one, and a whole official file is never refused for its ids.
    """
    first_line: dict[str, int | None] = {}
    repeated: list[tuple[str, int | None, int | None]] = []
    for example in examples:
        key = getattr(example, "id", None)
        if key is None:
            continue
        line = getattr(example, "line", None)
        if key in first_line:
            repeated.append((key, first_line[key], line))
        else:
            first_line[key] = line
    if not repeated:
        return
    key, first, again = repeated[0]
    where = f" (lines {first} and {again})" if first and again else ""
    logger.info(
        "%s: %d ids are repeated in the file, e.g. %r%s; its %d examples are keyed by their "
        "line instead", path, len(repeated), key, where, len(examples))
    for number, example in enumerate(examples, 1):
        if getattr(example, "id", None) is not None:
            line = getattr(example, "line", None)
            example.id = str(line) if line is not None else f"record-{number}"


def label_index(labels: Sequence[str]) -> dict[str, int]:
    return {label: i for i, label in enumerate(labels)}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
