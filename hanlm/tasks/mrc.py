"""Extractive machine reading comprehension: KorQuAD 1.0 (SQuAD v1 JSON) and KLUE-MRC (the same
layout, plus ``is_impossible`` questions without an answer).

Long contexts become several overlapping windows (``stride`` tokens of overlap, the
``stride`` of Hugging Face tokenizers). A training window that does not contain the answer
points at [CLS]. At prediction time the best start/end pair over all windows of a question is
mapped through the offset mapping to an exact character span of the original context; for
tasks with unanswerable questions, the [CLS] ("no answer") score competes with it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hanlm.errors import HanlmError
from hanlm.tasks import metrics
from hanlm.tasks.base import Feature, Outputs, ReadOptions, records
from hanlm.tasks.formats import load_json

logger = logging.getLogger(__name__)


@dataclass
class QaExample:
    id: str
    question: str
    context: str
    answers: list[tuple[str, int]]  # (text, character start)
    impossible: bool = False
    group: str = ""  # the article: splits keep an article on one side
    labelled: bool = True


@dataclass(frozen=True)
class QaTask:
    name: str
    metric: Literal["korquad", "klue-mrc"] = "korquad"
    allow_impossible: bool = False
    stride: int | None = None  # overlapping tokens between windows (default: max_len // 4)
    max_answer_tokens: int = 30
    max_question_tokens: int = 64
    n_best: int = 20
    description: str = "extractive question answering"
    labels: tuple[str, ...] = ()
    head: str = field(default="question-answering", init=False)

    @property
    def main_metric(self) -> str:
        return "f1" if self.metric == "korquad" else "rouge_w"

    # -------------------------------------------------------------------------- read

    def read(self, path: Path, options: ReadOptions) -> list[QaExample]:
        tree = load_json(path, options)
        if not isinstance(tree, dict) or not isinstance(tree.get("data"), list):
            raise HanlmError('expected SQuAD-style JSON: {"data": [{"paragraphs": [...]}]}',
                             path=str(path))
        return records(options, _questions(tree["data"], path),
                       lambda _, item: self._parse(path, item, options))

    def _parse(self, path: Path, item: tuple, options: ReadOptions) -> QaExample:
        title, context, qa, where = item
        qid = qa.get("id") or qa.get("guid")
        where = f"{where} (question {qid})" if qid else where
        if not isinstance(qa.get("question"), str) or qid is None:
            raise HanlmError(f"{where}: a question needs 'question' and 'id' (or 'guid')",
                             path=str(path))
        impossible = bool(qa.get("is_impossible", False))
        if impossible and not self.allow_impossible:
            raise HanlmError(f"{where}: unanswerable question, but task '{self.name}' has none",
                             path=str(path))
        answers = [] if impossible else self._answers(qa.get("answers"), context, where, path)
        if not answers and not impossible and options.require_labels:
            raise HanlmError(f"{where}: no answer given", path=str(path))
        labelled = impossible or bool(answers)
        return QaExample(str(qid), qa["question"], context, answers, impossible, title, labelled)

    def _answers(self, raw: Any, context: str, where: str, path: Path) -> list[tuple[str, int]]:
        out = []
        for a in raw or []:
            if not isinstance(a, dict) or "text" not in a or "answer_start" not in a:
                raise HanlmError(f"{where}: an answer needs 'text' and 'answer_start'",
                                 path=str(path))
            text, start = str(a["text"]), int(a["answer_start"])
            if not 0 <= start <= len(context) - len(text):
                raise HanlmError(f"{where}: answer_start {start} is out of range for a context "
                                 f"of {len(context)} characters", path=str(path))
            found = context[start : start + len(text)]
            if found != text:
                raise HanlmError(f"{where}: answer {text!r} does not match the context at "
                                 f"{start} ({found!r})", path=str(path))
            out.append((text, start))
        return out

    def infer_labels(self, examples: Sequence[QaExample]) -> tuple[str, ...]:
        return ()

    def model_kwargs(self) -> dict[str, Any]:
        return {}

    def special_tokens(self) -> list[str]:
        return []

    def group_of(self, example: QaExample) -> str:
        return example.group

    def describe(self) -> str:
        return self.description

    # -------------------------------------------------------------------------- encode

    def encode(self, examples: Sequence[QaExample], tokenizer: Any, max_len: int) -> list[Feature]:
        questions = _clip_questions([e.question for e in examples], tokenizer,
                                    min(self.max_question_tokens, max_len // 2))
        stride = self.stride if self.stride is not None else max_len // 4
        enc = tokenizer(questions, [e.context for e in examples], truncation="only_second",
                        max_length=max_len, stride=stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True, return_token_type_ids=True)
        features = []
        for j, i in enumerate(enc["overflow_to_sample_mapping"]):
            seq = enc.sequence_ids(j)
            offsets = [tuple(o) if s == 1 else (0, 0)
                       for o, s in zip(enc["offset_mapping"][j], seq, strict=True)]
            context = [k for k, s in enumerate(seq) if s == 1]
            first, last = context[0], context[-1]
            targets = self._positions(examples[i], offsets, first, last)
            features.append(Feature(i, enc["input_ids"][j], enc["token_type_ids"][j], targets,
                                    offsets=offsets, extra={"context": (first, last)}))
        return features

    @staticmethod
    def _positions(example: QaExample, offsets: list, first: int, last: int) -> dict[str, int]:
        """Token start/end of the first answer, or [CLS] (0, 0) when this window lacks it."""
        if not example.labelled:
            return {}
        if example.impossible or not example.answers:
            return {"start_positions": 0, "end_positions": 0}
        text, char_start = example.answers[0]
        char_end = char_start + len(text)
        if offsets[first][0] > char_start or offsets[last][1] < char_end:
            return {"start_positions": 0, "end_positions": 0}
        start = first
        while start <= last and offsets[start][1] <= char_start:
            start += 1
        end = last
        while end >= first and offsets[end][0] >= char_end:
            end -= 1
        return {"start_positions": start, "end_positions": end}

    # -------------------------------------------------------------------------- decode

    def decode(self, outputs: Sequence[Outputs], features: Sequence[Feature],
               examples: Sequence[QaExample]) -> list[dict[str, Any]]:
        windows: dict[int, list[tuple[Feature, Outputs]]] = defaultdict(list)
        for feature, out in zip(features, outputs, strict=True):
            windows[feature.example_index].append((feature, out))
        return [self._best_answer(example, windows[i]) for i, example in enumerate(examples)]

    def _best_answer(self, example: QaExample, windows: list[tuple[Feature, Outputs]]
                     ) -> dict[str, Any]:
        best: tuple[float, int, int] = (-np.inf, 0, 0)
        null = np.inf
        for feature, out in windows:
            starts, ends = out["start_logits"], out["end_logits"]
            null = min(null, float(starts[0] + ends[0]))
            score, s, e = self._best_span(starts, ends, feature.extra["context"])
            if score > best[0]:
                offsets = feature.offsets or []
                best = (score, offsets[s][0], offsets[e][1])
        score, start, end = best
        pred = {"id": example.id, "question": example.question}
        if score == -np.inf or (self.allow_impossible and null > score):
            # No window at all leaves `null` infinite, which JSON cannot hold: no score then.
            return {**pred, "answer": "", "start": None, "end": None, "impossible": True,
                    "score": null if np.isfinite(null) else None}
        return {**pred, "answer": example.context[start:end], "start": start, "end": end,
                "impossible": False, "score": score}

    def _best_span(self, starts: np.ndarray, ends: np.ndarray, context: tuple[int, int]
                   ) -> tuple[float, int, int]:
        first, last = context
        k = min(self.n_best, last - first + 1)
        s_idx = first + np.argpartition(-starts[first : last + 1], k - 1)[:k]
        e_idx = first + np.argpartition(-ends[first : last + 1], k - 1)[:k]
        scores = starts[s_idx][:, None] + ends[e_idx][None, :]
        length = e_idx[None, :] - s_idx[:, None]
        scores = np.where((length >= 0) & (length < self.max_answer_tokens), scores, -np.inf)
        flat = int(scores.argmax())
        r, c = divmod(flat, scores.shape[1])
        return float(scores[r, c]), int(s_idx[r]), int(e_idx[c])

    # -------------------------------------------------------------------------- score

    def score(self, predictions: Sequence[dict], examples: Sequence[QaExample]) -> dict[str, float]:
        if any(not e.labelled for e in examples):
            raise HanlmError("cannot score: some questions have no gold answer")
        answers = {e.id: [text for text, _ in e.answers] for e in examples}
        predicted = {p["id"]: p["answer"] for p in predictions}
        if self.metric == "korquad":
            return metrics.squad_scores(predicted, answers)
        impossible = {e.id: e.impossible for e in examples}
        return metrics.klue_mrc_scores(predicted, answers, impossible)


def _questions(articles: list, path: Path) -> Iterator[tuple[None, tuple]]:
    """Every question with its article title, context and a readable location."""
    for a, article in enumerate(articles):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise HanlmError(f"data[{a}] has no 'paragraphs' list", path=str(path))
        title = str(article.get("title", a))
        for p, paragraph in enumerate(article["paragraphs"]):
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            if not isinstance(context, str) or not context.strip() or not isinstance(
                    paragraph.get("qas"), list):
                raise HanlmError(f"data[{a}].paragraphs[{p}] needs a non-empty 'context' and 'qas'",
                                 path=str(path))
            for q, qa in enumerate(paragraph["qas"]):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                yield None, (title, context, qa if isinstance(qa, dict) else {}, where)


def _clip_questions(questions: list[str], tokenizer: Any, limit: int) -> list[str]:
    """Cut questions longer than `limit` tokens (the context window needs the room)."""
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for question, offsets in zip(questions, enc["offset_mapping"], strict=True):
        out.append(question if len(offsets) <= limit else question[: offsets[limit - 1][1]])
    return out
