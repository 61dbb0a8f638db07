"""KLUE-RE metrics: micro F1 without ``no_relation`` and AUPRC."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.metrics import auc, precision_recall_curve
from sklearn.metrics import f1_score as sklearn_f1_score

from hanlm.tasks.metrics.common import percent

# --------------------------------------------------------------------------------------------
# KLUE-RE


def re_scores(
    probs: npt.ArrayLike,
    labels: npt.ArrayLike,
    label_names: Sequence[str],
    no_relation: str = "no_relation",
) -> dict[str, float]:
    """KLUE-RE micro F1 without ``no_relation``, AUPRC and accuracy, in percent.

    ``probs`` is ``[n, n_classes]`` (class order = ``label_names``), ``labels`` the gold class
    indices. The predicted class is ``argmax(probs)``; a tie goes to the lowest index.

    - ``micro_f1``: KLUE-baseline ``klue_re_micro_f1``: sklearn micro F1 restricted to every
      class except ``no_relation`` (so ``no_relation`` predictions and golds only cost recall
      and precision of the other classes).
    - ``auprc``: KLUE-baseline ``klue_re_auprc``: per class, one-vs-rest
      ``auc(recall, precision)`` of ``precision_recall_curve`` on that class's probability,
      ``no_relation`` included, then the plain mean. A class with no gold example has no
      defined curve; it is left out of the mean (KLUE's code yields NaN there with the
      scikit-learn of its day and 50 with today's). Every class occurs in the KLUE-RE dev set,
      where this equals the official figure.
    - ``accuracy``: plain accuracy over all classes (not a KLUE leaderboard metric).
    """
    probs_arr = np.asarray(probs, dtype=float)
    labels_arr = np.asarray(labels).ravel()
    n_classes = len(label_names)
    if probs_arr.ndim != 2 or probs_arr.shape != (labels_arr.size, n_classes):
        raise ValueError(
            f"probs has shape {probs_arr.shape}; expected ({labels_arr.size}, {n_classes})"
        )
    if labels_arr.size == 0:
        raise ValueError("nothing to score: no examples")
    if no_relation not in label_names:
        raise ValueError(f"{no_relation!r} is not among the {n_classes} label names")
    if labels_arr.min() < 0 or labels_arr.max() >= n_classes:
        raise ValueError(f"gold labels must be class indices in [0, {n_classes})")
    preds = probs_arr.argmax(axis=1)
    return {
        "micro_f1": _re_micro_f1(preds, labels_arr, n_classes, label_names.index(no_relation)),
        "auprc": _re_auprc(probs_arr, labels_arr),
        "accuracy": percent(np.mean(preds == labels_arr)),
    }


def _re_micro_f1(
    preds: np.ndarray, labels: np.ndarray, n_classes: int, no_relation_index: int
) -> float:
    scored = [c for c in range(n_classes) if c != no_relation_index]
    score = sklearn_f1_score(labels, preds, labels=scored, average="micro", zero_division=0.0)
    return percent(score)


def _re_auprc(probs: np.ndarray, labels: np.ndarray) -> float:
    areas = []
    for c in range(probs.shape[1]):
        is_c = labels == c
        if not is_c.any():
            continue
        precision, recall, _ = precision_recall_curve(is_c.astype(int), probs[:, c])
        areas.append(auc(recall, precision))
    return percent(np.mean(areas))
