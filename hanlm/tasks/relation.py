"""Relation extraction (KLUE-RE): a sentence, a subject and an object span -> one relation.

Input formats: KLUE-RE's official JSON (a list of ``{guid, sentence, subject_entity,
object_entity, label}``) and the CSV form in ../shared/data/klue-re whose entity cells are
Python-dict strings (read with ``ast.literal_eval``, never ``eval``). In both, ``end_idx`` is
INCLUSIVE (DESIGN.md "Korean traps"); examples store a half-open ``[start, end)``.

Model: typed entity markers (Zhou & Chen 2021, "An Improved Baseline for Sentence-level
Relation Extraction") around the two spans, ``[S:PER]비틀즈[/S:PER]``, added to the tokenizer
as special tokens, and classification from ``[CLS]``. We chose [CLS] over the marker
representation so the result is a stock ``BertForSequenceClassification``: it loads with
``AutoModelForSequenceClassification`` and ``pipeline("text-classification")`` on marked
text, without hanlm. (Marker pooling scores higher in the paper; it would need a custom head.)
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hanlm.errors import HanlmError
from hanlm.tasks import metrics
from hanlm.tasks.base import Feature, Outputs, ReadOptions, label_index, records, softmax
from hanlm.tasks.formats import detect_format, read_rows
from hanlm.tasks.formats import field as get_field

logger = logging.getLogger(__name__)

KLUE_RE_LABELS = (
    "no_relation", "org:dissolved", "org:founded", "org:place_of_headquarters",
    "org:alternate_names", "org:member_of", "org:members", "org:political/religious_affiliation",
    "org:product", "org:founded_by", "org:top_members/employees",
    "org:number_of_employees/members", "per:date_of_birth", "per:date_of_death",
    "per:place_of_birth", "per:place_of_death", "per:place_of_residence", "per:origin",
    "per:employee_of", "per:schools_attended", "per:alternate_names", "per:parents",
    "per:children", "per:siblings", "per:spouse", "per:other_family", "per:colleagues",
    "per:product", "per:religion", "per:title",
)
KLUE_RE_ENTITY_TYPES = ("PER", "ORG", "LOC", "DAT", "POH", "NOH")


@dataclass
class Entity:
    word: str
    start: int
    end: int  # exclusive
    type: str


@dataclass
class RelationExample:
    id: str
    text: str
    subject: Entity
    object: Entity
    label: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class RelationTask:
    name: str
    labels: tuple[str, ...] = KLUE_RE_LABELS
    entity_types: tuple[str, ...] = KLUE_RE_ENTITY_TYPES
    no_relation: str = "no_relation"
    format: str = "auto"
    description: str = "relation extraction, typed entity markers + [CLS] classification"
    head: str = field(default="sequence-classification", init=False)
    main_metric: str = field(default="micro_f1", init=False)

    # -------------------------------------------------------------------------- read

    def read(self, path: Path, options: ReadOptions) -> list[RelationExample]:
        fmt = detect_format(path, self.format)
        required = ["sentence", "subject_entity", "object_entity"]
        if options.require_labels:
            required.append("label")
        rows = read_rows(path, options, fmt, required)
        return records(options, rows, lambda line, row: self._parse(path, line, row, options))

    def _parse(self, path: Path, line: int | None, row: dict, options: ReadOptions
               ) -> RelationExample:
        text = str(get_field(row, "sentence", path, line))
        ident = str(row.get("guid") or row.get("id") or line)
        subject = self._entity(get_field(row, "subject_entity", path, line), text, "subject",
                               path, line)
        obj = self._entity(get_field(row, "object_entity", path, line), text, "object", path,
                           line)
        label = None
        if options.require_labels or row.get("label") not in (None, ""):
            label = str(get_field(row, "label", path, line))
            if label not in self.labels:
                raise HanlmError(f"label {label!r} is not one of the {len(self.labels)} relations",
                                 path=str(path), line=line)
        return RelationExample(ident, text, subject, obj, label, line)

    def _entity(self, cell: Any, text: str, role: str, path: Path, line: int | None) -> Entity:
        where = {"path": str(path), "line": line}
        if isinstance(cell, str):
            try:
                cell = ast.literal_eval(cell)
            except (ValueError, SyntaxError):
                raise HanlmError(f"{role}_entity is not a dict literal: {cell[:60]!r}",
                                 **where) from None
        if not isinstance(cell, dict):
            raise HanlmError(f"{role}_entity must be a dict", **where)
        missing = [k for k in ("word", "start_idx", "end_idx", "type") if k not in cell]
        if missing:
            raise HanlmError(f"{role}_entity lacks {', '.join(missing)}", **where)
        start, end = int(cell["start_idx"]), int(cell["end_idx"]) + 1  # end_idx is inclusive
        if not 0 <= start < end <= len(text):
            raise HanlmError(f"{role}_entity span [{start}, {end - 1}] is out of range for a "
                             f"sentence of {len(text)} characters", **where)
        if text[start:end] != cell["word"]:
            raise HanlmError(f"{role}_entity span [{start}, {end - 1}] is {text[start:end]!r}, "
                             f"not the word {cell['word']!r} (end_idx is inclusive)", **where)
        if cell["type"] not in self.entity_types:
            raise HanlmError(f"{role}_entity type {cell['type']!r} is not one of "
                             f"{', '.join(self.entity_types)}", **where)
        return Entity(cell["word"], start, end, cell["type"])

    def infer_labels(self, examples: Sequence[RelationExample]) -> tuple[str, ...]:
        return self.labels

    def model_kwargs(self) -> dict[str, Any]:
        return {"num_labels": len(self.labels), "problem_type": "single_label_classification",
                "id2label": dict(enumerate(self.labels)), "label2id": label_index(self.labels)}

    def special_tokens(self) -> list[str]:
        return [m for t in self.entity_types for role in "SO" for m in _markers(role, t)]

    def group_of(self, example: RelationExample) -> str:
        return example.id

    def describe(self) -> str:
        return self.description

    def usage_note(self) -> str:
        return ("Input: the sentence with typed markers around the subject and the object, e.g. "
                "`[S:ORG]비틀즈[/S:ORG]가 … [O:PER]조지 해리슨[/O:PER]`. Entity types: "
                + ", ".join(self.entity_types) + ".")

    # -------------------------------------------------------------------------- encode/decode

    def encode(self, examples: Sequence[RelationExample], tokenizer: Any, max_len: int
               ) -> list[Feature]:
        marked = [mark_entities(e) for e in examples]
        enc = tokenizer(marked, add_special_tokens=False)
        marker_ids = set(tokenizer.convert_tokens_to_ids(self.special_tokens()))
        index = label_index(self.labels)
        features, cut = [], 0
        for i, example in enumerate(examples):
            ids = _window(enc["input_ids"][i], marker_ids, max_len - 2)
            cut += len(ids) < len(enc["input_ids"][i])
            ids = [tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]
            targets = {} if example.label is None else {"labels": index[example.label]}
            features.append(Feature(i, ids, [0] * len(ids), targets))
        if cut:
            logger.info("%d of %d sentences cut to --max-len around their entities", cut,
                        len(examples))
        return features

    def decode(self, outputs: Sequence[Outputs], features: Sequence[Feature],
               examples: Sequence[RelationExample]) -> list[dict[str, Any]]:
        predictions = []
        for out, feature in zip(outputs, features, strict=True):
            example = examples[feature.example_index]
            probs = softmax(np.asarray(out["logits"], dtype=np.float64))
            best = int(probs.argmax())
            predictions.append({
                "id": example.id, "text": example.text,
                "subject": _span_json(example.subject), "object": _span_json(example.object),
                "label": self.labels[best], "score": float(probs[best]),
                "probs": [round(float(p), 6) for p in probs],
            })
        return predictions

    def score(self, predictions: Sequence[dict], examples: Sequence[RelationExample]
              ) -> dict[str, float]:
        if any(e.label is None for e in examples):
            raise HanlmError("cannot score: some examples have no gold relation")
        index = label_index(self.labels)
        probs = np.array([p["probs"] for p in predictions])
        gold = [index[e.label] for e in examples]  # type: ignore[index]
        return metrics.re_scores(probs, gold, list(self.labels), no_relation=self.no_relation)


def _markers(role: str, entity_type: str) -> tuple[str, str]:
    return f"[{role}:{entity_type}]", f"[/{role}:{entity_type}]"


def mark_entities(example: RelationExample) -> str:
    """The sentence with ``[S:T]…[/S:T]`` and ``[O:T]…[/O:T]`` around the two spans."""
    inserts = []
    for role, ent in (("S", example.subject), ("O", example.object)):
        open_, close = _markers(role, ent.type)
        inserts += [(ent.start, 1, open_), (ent.end, 0, close)]
    text = example.text
    # Right to left so earlier offsets stay valid; at one position a close goes before an open.
    for pos, _, marker in sorted(inserts, key=lambda x: (x[0], x[1]), reverse=True):
        text = text[:pos] + marker + text[pos:]
    return text


def _window(ids: list[int], marker_ids: set[int], size: int) -> list[int]:
    """At most `size` tokens, keeping every marker when the entities fit in one window."""
    if len(ids) <= size:
        return ids
    where = [i for i, t in enumerate(ids) if t in marker_ids] or [0]
    first, last = min(where), max(where)
    center = (first + last) // 2
    start = max(0, min(center - size // 2, len(ids) - size))
    if last - first + 1 <= size:
        start = min(max(start, last - size + 1), first)
    return ids[start : start + size]


def _span_json(entity: Entity) -> dict[str, Any]:
    return {"start": entity.start, "end": entity.end, "type": entity.type, "text": entity.word}
