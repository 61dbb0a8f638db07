"""Token classification from character-level BIO tags (KLUE-NER).

KLUE-NER labels every character (spaces too): ``CHAR<TAB>TAG`` lines, ``##`` comment lines
(the one before a sentence carries its guid), a blank line between sentences. Sub-words get
the tag of their first character through the fast tokenizer's offset mapping (DESIGN.md: no
``##`` patching); predictions go back to characters: a sub-word's tag on its first character,
its inside tag on the rest, and the spaces between two sub-words of one entity inside it too.
A sentence longer than ``max_len`` tokens becomes overlapping windows (``stride`` tokens of
overlap, as MRC contexts); each sub-word takes its prediction from the window where it has the
most context on its shorter side (BERT's "max context" rule), so every character is predicted.
Scoring: ``metrics.ner_scores`` on the non-space characters, as KLUE-baseline does.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hanlm.errors import HanlmError
from hanlm.tasks import metrics
from hanlm.tasks.base import Feature, Outputs, ReadOptions, label_index
from hanlm.tasks.formats import read_text

logger = logging.getLogger(__name__)

KLUE_NER_LABELS = tuple(
    [f"{p}-{t}" for t in ("DT", "LC", "OG", "PS", "QT", "TI") for p in ("B", "I")] + ["O"]
)
_GUID = re.compile(r"^##\s*(\S+)\t")


@dataclass
class NerExample:
    id: str
    text: str
    tags: list[str] | None
    line: int | None = None


@dataclass
class _Sentence:
    line: int
    id: str
    chars: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    error: HanlmError | None = None


@dataclass(frozen=True)
class TokenTask:
    """Character-BIO named-entity recognition; ``labels`` is the full tag set (with ``O``)."""

    name: str
    labels: tuple[str, ...] = KLUE_NER_LABELS
    stride: int | None = None  # overlapping tokens between windows (default: max_len // 4)
    description: str = "named-entity recognition, character-level BIO tags"
    head: str = field(default="token-classification", init=False)
    main_metric: str = field(default="entity_f1", init=False)

    # -------------------------------------------------------------------------- read

    def read(self, path: Path, options: ReadOptions) -> list[NerExample]:
        text = read_text(path, options.encoding)
        out: list[NerExample] = []
        current: _Sentence | None = None
        pending_id: str | None = None
        for number, line in enumerate(text.split("\n"), 1):
            line = line.removesuffix("\r")
            if line.startswith("##"):
                match = _GUID.match(line)
                pending_id = match.group(1) if match else pending_id
                continue
            if not line:
                self._finish(current, out, options)
                current = None
                continue
            if current is None:
                current = _Sentence(number, pending_id or f"line-{number}")
                pending_id = None
            self._add_char(current, line, number, path, options)
        self._finish(current, out, options)
        return out

    def _add_char(self, s: _Sentence, line: str, number: int, path: Path,
                  options: ReadOptions) -> None:
        if s.error is not None:
            return
        parts = line.split("\t")
        wanted = (2,) if options.require_labels else (1, 2)
        if len(parts) not in wanted:
            s.error = HanlmError(
                f"expected 2 tab-separated columns (CHAR, TAG), found {len(parts)} "
                f"(sentence {s.id})", path=str(path), line=number)
            return
        char, tag = parts[0], (parts[1] if len(parts) == 2 else None)
        if len(char) != 1:
            s.error = HanlmError(f"expected one character, found {char!r} (sentence {s.id})",
                                 path=str(path), line=number)
        elif tag is not None and tag not in self.labels:
            s.error = HanlmError(f"tag {tag!r} is not in the label set ({', '.join(self.labels)})"
                                 f" (sentence {s.id})", path=str(path), line=number)
        elif tag is not None and tag.startswith("I-") and _previous_type(s) != tag[2:]:
            s.error = HanlmError(
                f"tag {tag!r} continues an entity that never began (after "
                f"{s.tags[-1] if s.tags else 'the sentence start'}; BIO entities start with "
                f"B-{tag[2:]}) (sentence {s.id})", path=str(path), line=number)
        else:
            s.chars.append(char)
            s.tags.append(tag)  # type: ignore[arg-type]

    def _finish(self, s: _Sentence | None, out: list[NerExample], options: ReadOptions) -> None:
        if s is None:
            return
        if s.error is not None:
            options.reject(s.error)
            return
        tags = None if any(t is None for t in s.tags) else s.tags
        out.append(NerExample(s.id, "".join(s.chars), tags, s.line))

    def infer_labels(self, examples: Sequence[NerExample]) -> tuple[str, ...]:
        return self.labels

    def model_kwargs(self) -> dict[str, Any]:
        return {"num_labels": len(self.labels), "id2label": dict(enumerate(self.labels)),
                "label2id": label_index(self.labels)}

    def special_tokens(self) -> list[str]:
        return []

    def group_of(self, example: NerExample) -> str:
        return example.id

    def describe(self) -> str:
        return self.description

    # -------------------------------------------------------------------------- encode/decode

    def encode(self, examples: Sequence[NerExample], tokenizer: Any, max_len: int) -> list[Feature]:
        stride = self.stride if self.stride is not None else max_len // 4
        room = max_len - tokenizer.num_special_tokens_to_add()
        if stride >= room:
            raise HanlmError(f"--stride {stride} must be below the {room} text tokens of a "
                             f"--max-len {max_len} window")
        enc = tokenizer([e.text for e in examples], truncation=True, max_length=max_len,
                        stride=stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True, return_token_type_ids=True)
        index = label_index(self.labels)
        features = []
        for j, i in enumerate(enc["overflow_to_sample_mapping"]):
            offsets = [tuple(o) for o in enc["offset_mapping"][j]]
            targets = {}
            if examples[i].tags is not None:
                targets["labels"] = [-100 if s == e else index[examples[i].tags[s]]
                                     for s, e in offsets]
            features.append(Feature(i, enc["input_ids"][j], enc["token_type_ids"][j], targets,
                                    offsets=offsets))
        if len(features) > len(examples):
            logger.info("%d windows for %d sentences: those longer than --max-len %d tokens "
                        "are split into windows overlapping by %d", len(features), len(examples),
                        max_len, stride)
        return features

    def decode(self, outputs: Sequence[Outputs], features: Sequence[Feature],
               examples: Sequence[NerExample]) -> list[dict[str, Any]]:
        # example -> token offsets -> (context of its best window, predicted tag); a token's
        # context is its distance to the nearer edge of the window's text
        chosen: dict[int, dict[tuple[int, int], tuple[int, str]]] = defaultdict(dict)
        for out, feature in zip(outputs, features, strict=True):
            tokens = chosen[feature.example_index]
            predicted = np.asarray(out["logits"]).argmax(-1)
            inside = [k for k, (s, e) in enumerate(feature.offsets or []) if s != e]
            for k in inside:
                span, context = feature.offsets[k], min(k - inside[0], inside[-1] - k)
                if span not in tokens or context > tokens[span][0]:
                    tokens[span] = (context, self.labels[int(predicted[k])])
        predictions = []
        for i, example in enumerate(examples):
            spans = sorted(chosen[i])
            tags = char_tags(len(example.text), spans, [chosen[i][s][1] for s in spans])
            predictions.append({"id": example.id, "text": example.text,
                                "entities": entity_spans(example.text, tags), "tags": tags})
        return predictions

    def score(self, predictions: Sequence[dict], examples: Sequence[NerExample]) -> dict[str, float]:
        if any(e.tags is None for e in examples):
            raise HanlmError("cannot score: some sentences have no gold tags")
        pred, gold = [], []
        for p, e in zip(predictions, examples, strict=True):
            keep = [i for i, ch in enumerate(e.text) if not ch.isspace()]  # KLUE-baseline
            pred.append([p["tags"][i] for i in keep])
            gold.append([e.tags[i] for i in keep])  # type: ignore[index]
        entity_types = sorted({t[2:] for t in self.labels if t != "O"})
        return metrics.ner_scores(pred, gold, entity_types=entity_types)


def char_tags(n_chars: int, offsets: Sequence[tuple[int, int]], token_tags: Sequence[str]
              ) -> list[str]:
    """Character tags from sub-word tags (special tokens have empty offsets)."""
    tags = ["O"] * n_chars
    prev_end, prev_type = None, None
    for (start, end), tag in zip(offsets, token_tags, strict=True):
        if start == end:
            continue
        kind = None if tag == "O" else tag[2:]
        if tag.startswith("I-") and prev_type != kind:
            tag = f"B-{kind}"  # an entity cannot begin inside: repair I-X after O or after Y
        elif tag.startswith("I-") and prev_end is not None:
            tags[prev_end:start] = [tag] * (start - prev_end)  # spaces inside one entity
        tags[start] = tag
        tags[start + 1 : end] = [tag if kind is None else f"I-{kind}"] * (end - start - 1)
        prev_end, prev_type = end, kind
    return tags


def entity_spans(text: str, tags: Sequence[str]) -> list[dict[str, Any]]:
    """``{start, end (exclusive), label, text}`` for each B-X I-X... run of character tags."""
    spans: list[dict[str, Any]] = []
    for i, tag in enumerate(tags):
        if tag.startswith("B-") or (tag.startswith("I-") and (not spans or spans[-1]["end"] != i
                                                             or spans[-1]["label"] != tag[2:])):
            spans.append({"start": i, "end": i + 1, "label": tag[2:]})
        elif tag.startswith("I-"):
            spans[-1]["end"] = i + 1
    for span in spans:
        span["text"] = text[span["start"] : span["end"]]
    return spans


def _previous_type(s: _Sentence) -> str | None:
    """Entity type of the sentence's last tag (None for O or at the start)."""
    last = s.tags[-1] if s.tags else None
    return last[2:] if last and last[:2] in ("B-", "I-") else None
