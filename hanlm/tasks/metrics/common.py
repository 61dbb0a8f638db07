"""Helpers every metric shares: the percentage scale and input checks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def percent(value: float) -> float:
    return float(value) * 100.0


def same_length_arrays(
    preds: npt.ArrayLike, labels: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Return both inputs as 1-D arrays, or raise if they are empty or differ in length."""
    preds_arr, labels_arr = np.asarray(preds).ravel(), np.asarray(labels).ravel()
    if preds_arr.shape != labels_arr.shape:
        raise ValueError(f"{preds_arr.size} predictions for {labels_arr.size} labels")
    if preds_arr.size == 0:
        raise ValueError("nothing to score: no predictions and no labels")
    return preds_arr, labels_arr
