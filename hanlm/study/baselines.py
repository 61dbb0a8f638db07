"""TF-IDF + logistic regression: the baseline a pretrained model has to beat.

Scored with the tasks' own metrics (`hanlm.tasks`), on the same examples as the neural models.

- sentence tasks (NSMC): word 1-2-grams + character 1-3-grams (within words), sublinear tf;
- pair tasks (KLUE-NLI): the same features of the premise and of the hypothesis, side by side
  (a bag of words cannot compare the two, which is the point of a baseline);
- character tagging (KLUE-NER): each non-space character's tag from hashed features of a window
  of ±2 characters and the character bigrams around it (no tag transitions: a linear tagger).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction import FeatureHasher
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import FeatureUnion

from hanlm.tasks.base import Task

MAX_ITER = 1000


def text_features() -> FeatureUnion:
    return FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                  token_pattern=r"(?u)\S+")),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2,
                                  sublinear_tf=True)),
    ])


def _classifier(seed: int, c: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=MAX_ITER, random_state=seed)


def classify_texts(train: Sequence[Any], test: Sequence[Any], seed: int = 0) -> list[str]:
    """Predicted labels of `test` (TextExample: ``text``, ``text_pair``, ``label``)."""
    first, second = text_features(), text_features()
    has_pair = any(e.text_pair for e in train)
    x_train = first.fit_transform([e.text for e in train])
    x_test = first.transform([e.text for e in test])
    if has_pair:
        x_train = sparse.hstack([x_train, second.fit_transform([e.text_pair or "" for e in train])])
        x_test = sparse.hstack([x_test, second.transform([e.text_pair or "" for e in test])])
    model = _classifier(seed).fit(x_train, [str(e.label) for e in train])
    return [str(label) for label in model.predict(x_test)]


# ------------------------------------------------------------------------------ tagging


def char_features(text: str, i: int) -> list[str]:
    def at(j: int) -> str:
        return text[j] if 0 <= j < len(text) else "<>"

    feats = [f"c{k}={at(i + k)}" for k in (-2, -1, 0, 1, 2)]
    feats += [f"b-={at(i - 1)}{at(i)}", f"b+={at(i)}{at(i + 1)}",
              f"t={at(i - 1)}{at(i)}{at(i + 1)}", f"space-={at(i - 1).isspace()}"]
    return feats


def _positions(examples: Sequence[Any]) -> list[tuple[int, int]]:
    return [(n, i) for n, e in enumerate(examples) for i, ch in enumerate(e.text)
            if not ch.isspace()]


def _hashed(examples: Sequence[Any], positions: list[tuple[int, int]]) -> sparse.csr_matrix:
    hasher = FeatureHasher(n_features=2**20, input_type="string", alternate_sign=False)
    return hasher.transform(char_features(examples[n].text, i) for n, i in positions)


def tag_characters(train: Sequence[Any], test: Sequence[Any], seed: int = 0) -> list[list[str]]:
    """Predicted per-character BIO tags of `test` (NerExample: ``text``, ``tags``)."""
    train_pos = _positions(train)
    y = [train[n].tags[i] for n, i in train_pos]
    model = SGDClassifier(loss="log_loss", alpha=1e-6, max_iter=20, tol=None,
                          random_state=seed).fit(_hashed(train, train_pos), y)
    test_pos = _positions(test)
    predicted = model.predict(_hashed(test, test_pos)) if test_pos else np.array([])
    tags = [["O"] * len(e.text) for e in test]
    for (n, i), tag in zip(test_pos, predicted, strict=True):
        tags[n][i] = str(tag)
    return [_repair(e.text, t) for e, t in zip(test, tags, strict=True)]


def _repair(text: str, tags: list[str]) -> list[str]:
    """An I-X that does not follow X (spaces skipped, as the metric skips them) becomes B-X."""
    out, previous = list(tags), None
    for i, tag in enumerate(tags):
        if text[i].isspace():
            continue
        kind = None if tag == "O" else tag[2:]
        if tag.startswith("I-") and previous != kind:
            out[i] = f"B-{kind}"
        previous = kind
    return out


# ------------------------------------------------------------------------------ entry point


def run_baseline(task: Task, train: Sequence[Any], test: Sequence[Any], seed: int = 0
                 ) -> dict[str, float]:
    """Fit on `train`, score `test` with the task's official metric."""
    if task.head == "token-classification":
        predictions = [{"tags": t} for t in tag_characters(train, test, seed)]
    else:
        predictions = [{"label": label} for label in classify_texts(train, test, seed)]
    return task.score(predictions, test)
