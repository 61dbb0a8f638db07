"""Sentence and sentence-pair classification or regression (one label per input).

Covers NSMC, KLUE-YNAT, KLUE-NLI, KLUE-STS, KorNLI, KorSTS and the generic CSV/TSV/JSON(L)
reader: they differ only in data (columns, labels, metric), which `SequenceTask`'s fields hold.
Head: ``AutoModelForSequenceClassification`` (``num_labels=1`` and MSE loss for regression).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hanlm.errors import HanlmError
from hanlm.tasks import metrics
from hanlm.tasks.base import Feature, Outputs, ReadOptions, label_index, records, softmax
from hanlm.tasks.formats import detect_format, read_rows
from hanlm.tasks.formats import field as get_field


@dataclass(frozen=True)
class Columns:
    """Where a format keeps each value (a dotted name reaches into JSON objects)."""

    text: str
    label: str | None = "label"
    text_pair: str | None = None
    id: str | None = None


@dataclass
class TextExample:
    id: str
    text: str
    text_pair: str | None = None
    label: str | float | None = None
    line: int | None = None


# Labels that mean "no gold label" rather than a wrong one. SNLI and MultiNLI write "-" where
# the annotators did not agree; such a row stays an error (nothing is dropped unseen) whose
# message says how to leave these rows out on purpose.
_LEAVE_OUT = "; --on-error skip leaves such rows out and lists each in skipped.jsonl"
_NO_GOLD = {
    "-": "; '-' marks a pair whose annotators did not agree (no gold label)" + _LEAVE_OUT,
    "": "; the label is empty" + _LEAVE_OUT,
}

Metric = Literal["accuracy", "macro_f1", "sts"]
_MAIN_METRIC: dict[str, str] = {"accuracy": "accuracy", "macro_f1": "macro_f1", "sts": "pearsonr"}


@dataclass(frozen=True)
class SequenceTask:
    """One label (or one score) per text or text pair.

    ``columns`` maps a format family (``table`` for CSV/TSV, ``json`` for JSON/JSONL) to its
    `Columns`; ``labels`` is the label set (empty: inferred from the training file).
    """

    name: str
    columns: Mapping[str, Columns]
    labels: tuple[str, ...] = ()
    metric: Metric = "accuracy"
    regression: bool = False
    score_range: tuple[float, float] | None = None
    group_by: Literal["id", "text"] = "id"
    format: str = "auto"
    description: str = ""
    head: str = field(default="sequence-classification", init=False)

    @property
    def main_metric(self) -> str:
        return _MAIN_METRIC[self.metric]

    # -------------------------------------------------------------------------- read

    def read(self, path: Path, options: ReadOptions) -> list[TextExample]:
        fmt = detect_format(path, self.format)
        cols = self.columns_for(fmt, path)
        required = [c for c in (cols.text, cols.text_pair) if c]
        if options.require_labels and cols.label:
            required.append(cols.label)
        rows = read_rows(path, options, fmt, required)
        return records(options, rows, lambda line, row: self._parse(path, line, row, cols, options))

    def columns_for(self, fmt: str, path: Path) -> Columns:
        family = "table" if fmt in ("csv", "tsv") else "json"
        cols = self.columns.get(family) or self.columns.get("any")
        if cols is None:
            raise HanlmError(
                f"task '{self.name}' does not read {fmt.upper()} files "
                f"(it reads: {', '.join(self.columns)})",
                path=str(path),
            )
        return cols

    def _parse(
        self, path: Path, line: int | None, row: dict, cols: Columns, options: ReadOptions
    ) -> TextExample:
        text = _text(get_field(row, cols.text, path, line), cols.text, path, line)
        pair = None
        if cols.text_pair:
            pair = _text(get_field(row, cols.text_pair, path, line), cols.text_pair, path, line)
        label = None
        if cols.label and (options.require_labels or _has(row, cols.label)):
            label = self._label(get_field(row, cols.label, path, line), path, line)
        ident = str(row[cols.id]) if cols.id and cols.id in row else str(line)
        return TextExample(id=ident, text=text, text_pair=pair, label=label, line=line)

    def _label(self, raw: Any, path: Path, line: int | None) -> str | float:
        if self.regression:
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise HanlmError(f"score {raw!r} is not a number", path=str(path), line=line) from None
            lo, hi = self.score_range or (-math.inf, math.inf)
            if not lo <= value <= hi or math.isnan(value):
                raise HanlmError(f"score {value} is outside [{lo}, {hi}]", path=str(path), line=line)
            return value
        label = str(raw).strip()
        if self.labels and label not in self.labels:
            raise HanlmError(
                f"label {label!r} is not in the label set ({', '.join(self.labels)})"
                f"{_NO_GOLD.get(label, '')}",
                path=str(path), line=line,
            )
        return label

    def infer_labels(self, examples: Sequence[TextExample]) -> tuple[str, ...]:
        if self.regression or self.labels:
            return self.labels
        found = {str(e.label) for e in examples if e.label is not None}
        numeric = all(_is_int(x) for x in found)
        return tuple(sorted(found, key=(lambda x: int(x)) if numeric else None))

    def model_kwargs(self) -> dict[str, Any]:
        if self.regression:
            return {"num_labels": 1, "problem_type": "regression",
                    "id2label": {0: "score"}, "label2id": {"score": 0}}
        return {
            "num_labels": len(self.labels),
            "problem_type": "single_label_classification",
            "id2label": dict(enumerate(self.labels)),
            "label2id": label_index(self.labels),
        }

    def special_tokens(self) -> list[str]:
        return []

    def group_of(self, example: TextExample) -> str:
        return example.text if self.group_by == "text" else example.id

    def describe(self) -> str:
        kind = "regression" if self.regression else "classification"
        pair = "sentence-pair" if any(c.text_pair for c in self.columns.values()) else "sentence"
        return self.description or f"{pair} {kind}"

    # -------------------------------------------------------------------------- encode/decode

    def encode(self, examples: Sequence[TextExample], tokenizer: Any, max_len: int) -> list[Feature]:
        texts = [e.text for e in examples]
        pairs = [e.text_pair or "" for e in examples] if any(e.text_pair for e in examples) else None
        enc = tokenizer(texts, pairs, truncation=True, max_length=max_len,
                        return_token_type_ids=True)
        index = label_index(self.labels)
        features = []
        for i, example in enumerate(examples):
            targets = {}
            if example.label is not None:
                targets["labels"] = (float(example.label) if self.regression
                                     else index[str(example.label)])
            features.append(Feature(i, enc["input_ids"][i], enc["token_type_ids"][i], targets))
        return features

    def decode(
        self, outputs: Sequence[Outputs], features: Sequence[Feature],
        examples: Sequence[TextExample],
    ) -> list[dict[str, Any]]:
        predictions = []
        for out, feature in zip(outputs, features, strict=True):
            example = examples[feature.example_index]
            pred: dict[str, Any] = {"id": example.id, "text": example.text}
            if example.text_pair is not None:
                pred["text_pair"] = example.text_pair
            logits = np.asarray(out["logits"], dtype=np.float64)
            if self.regression:
                pred["label"] = float(logits[0])
            else:
                probs = softmax(logits)
                best = int(probs.argmax())
                pred["label"] = self.labels[best]
                pred["score"] = float(probs[best])
                pred["scores"] = {lab: float(p) for lab, p in zip(self.labels, probs, strict=True)}
            predictions.append(pred)
        return predictions

    def score(self, predictions: Sequence[dict], examples: Sequence[TextExample]) -> dict[str, float]:
        gold = [e.label for e in examples]
        if any(g is None for g in gold):
            raise HanlmError("cannot score: some examples have no gold label")
        pred = [p["label"] for p in predictions]
        if self.metric == "sts":
            return metrics.sts_scores(pred, gold)
        scores = metrics.accuracy(pred, gold)
        if self.metric == "macro_f1":
            scores = {**metrics.macro_f1(pred, gold), **scores}
        return scores


def _text(value: Any, name: str, path: Path, line: int | None) -> str:
    if value is None:
        raise HanlmError(f"field '{name}' is empty (null)", path=str(path), line=line)
    return str(value)


def _has(row: dict, name: str) -> bool:
    value: Any = row
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return value is not None and value != ""


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
