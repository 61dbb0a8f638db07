"""Classification and STS metrics: NSMC, KLUE-NLI, KLUE-YNAT, KLUE-STS, KorNLI, KorSTS."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.stats import pearsonr
from sklearn.metrics import f1_score as sklearn_f1_score

from hanlm.tasks.metrics.common import percent, same_length_arrays

KLUE_STS_THRESHOLD = 3.0
"""KLUE-STS binarisation threshold: a similarity >= 3.0 counts as paraphrase (label 1)."""


# --------------------------------------------------------------------------------------------
# classification: NSMC, KLUE-NLI, KLUE-YNAT, KLUE-STS


def accuracy(preds: npt.ArrayLike, labels: npt.ArrayLike) -> dict[str, float]:
    """Accuracy in percent: NSMC and KLUE-NLI (KLUE-baseline ``klue_nli_acc``)."""
    preds_arr, labels_arr = same_length_arrays(preds, labels)
    return {"accuracy": percent(np.mean(preds_arr == labels_arr))}


def macro_f1(
    preds: npt.ArrayLike, labels: npt.ArrayLike, labels_list: Sequence | None = None
) -> dict[str, float]:
    """Macro-averaged F1 in percent: KLUE-YNAT (KLUE-baseline ``ynat_macro_f1``).

    KLUE averages over the classes that occur in ``labels`` or ``preds``. Pass ``labels_list``
    to average over a fixed class list instead; a listed class absent from both sides then
    scores 0 (sklearn's value for an undefined F1), so it lowers the average.
    """
    preds_arr, labels_arr = same_length_arrays(preds, labels)
    score = sklearn_f1_score(
        labels_arr,
        preds_arr,
        labels=None if labels_list is None else list(labels_list),
        average="macro",
        zero_division=0.0,
    )
    return {"macro_f1": percent(score)}


def sts_scores(
    pred_scores: npt.ArrayLike, gold_scores: npt.ArrayLike, threshold: float = KLUE_STS_THRESHOLD
) -> dict[str, float]:
    """KLUE-STS: Pearson r and binary F1 after thresholding, both in percent.

    Source: KLUE-baseline ``klue_sts_pearsonr`` and ``klue_sts_f1``: both the predicted and the
    gold similarity (0-5) become 1 when ``>= threshold`` (3.0) and 0 otherwise; F1 is that of
    class 1. ``pearsonr`` is NaN when either side is constant (r is undefined; scipy warns).
    """
    pred_arr, gold_arr = same_length_arrays(pred_scores, gold_scores)
    pred_arr, gold_arr = pred_arr.astype(float), gold_arr.astype(float)
    r = pearsonr(pred_arr, gold_arr).statistic
    f1 = sklearn_f1_score(
        (gold_arr >= threshold).astype(int),
        (pred_arr >= threshold).astype(int),
        average="binary",
        zero_division=0.0,
    )
    return {"pearsonr": percent(r), "f1": percent(f1)}
