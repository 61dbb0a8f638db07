"""Extractive MRC metrics: KorQuAD v1.0 (EM, character F1) and KLUE-MRC (EM, ROUGE-W)."""

from __future__ import annotations

import logging
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from difflib import SequenceMatcher

import numpy as np

from hanlm.tasks.metrics.common import percent

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# KorQuAD v1.0

# KorQuAD v1.0's evaluate-v1.0.py replaces these with a space before lower-casing and removing
# ASCII punctuation. It does not remove English articles (SQuAD's script does).
_KORQUAD_SPACED = str.maketrans({ch: " " for ch in "'\"《》<>〈〉()‘’"})
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def squad_scores(
    predictions: Mapping[str, str], answers: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """KorQuAD v1.0 exact match and F1, in percent, as the official ``evaluate-v1.0.py``.

    Reproduces KorQuAD v1.0's script (not SQuAD v1.1's): answers are normalised by replacing
    ``' " 《 》 < > 〈 〉 ( ) ‘ ’`` with spaces, lower-casing, dropping ASCII punctuation and
    collapsing whitespace; EM compares the normalised strings (spaces kept); F1 is
    **character-level** over the normalised answer with its spaces removed. Each question
    takes its best score over its gold answers. Questions are those of ``answers``; one without
    a prediction scores 0 and still counts, as in the official script.
    """
    if not answers:
        raise ValueError("nothing to score: no questions")
    exact, f1 = [], []
    for qid, golds in answers.items():
        if not golds:
            raise ValueError(f"question {qid!r} has no gold answer (KorQuAD v1.0 has none such)")
        prediction = predictions.get(qid)
        if prediction is None:
            exact.append(0.0)
            f1.append(0.0)
            continue
        exact.append(max(_korquad_exact_match(prediction, gold) for gold in golds))
        f1.append(max(_korquad_char_f1(prediction, gold) for gold in golds))
    _warn_missing(predictions, answers)
    return {"exact_match": percent(np.mean(exact)), "f1": percent(np.mean(f1))}


def _korquad_normalize(text: str) -> str:
    text = text.translate(_KORQUAD_SPACED).lower()
    text = "".join(ch for ch in text if ch not in _ASCII_PUNCTUATION)
    return " ".join(text.split())


def _korquad_exact_match(prediction: str, gold: str) -> float:
    return float(_korquad_normalize(prediction) == _korquad_normalize(gold))


def _korquad_char_f1(prediction: str, gold: str) -> float:
    pred_chars = _korquad_normalize(prediction).replace(" ", "")
    gold_chars = _korquad_normalize(gold).replace(" ", "")
    common = sum((Counter(pred_chars) & Counter(gold_chars)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_chars), common / len(gold_chars)
    return 2 * precision * recall / (precision + recall)


def _warn_missing(predictions: Mapping[str, str], answers: Mapping[str, object]) -> None:
    missing = sum(1 for qid in answers if qid not in predictions)
    if missing:
        logger.warning(
            "%d of %d questions have no prediction; each scores 0", missing, len(answers)
        )


# --------------------------------------------------------------------------------------------
# KLUE-MRC

# Copied as written in KLUE-baseline's metrics/utils.py. The character class closes after 〉,
# so the pattern matches only a quote/bracket followed by the literal "()‘’", which is
# practically never: 《 》 〈 〉 ‘ ’ survive normalisation (the ASCII ones go with the
# punctuation). Kept, because KLUE's published EM/ROUGE-W figures were made with it.
_KLUE_MRC_PATTERN = re.compile(r"[\'\"《》<>〈〉]\(\)\‘\’")


def klue_mrc_scores(
    predictions: Mapping[str, str],
    answers: Mapping[str, Sequence[str]],
    is_impossible: Mapping[str, bool],
) -> dict[str, float]:
    """KLUE-MRC exact match and character-level ROUGE-W, in percent.

    Source: KLUE-baseline ``klue_mrc_em``, ``klue_mrc_rouge_w`` and ``metrics/utils.py``.
    Answers are normalised (lower-case, drop ASCII punctuation, collapse whitespace; see
    ``_KLUE_MRC_PATTERN``). An unanswerable question (``is_impossible[qid]``, or an empty answer
    list) has the empty string as its only gold answer, so only the prediction ``""`` is right.

    ``rouge_w`` is KLUE's ROUGE-W, which the KLUE paper describes as an LCCS-based F1: the
    length of the longest common *contiguous* substring of the normalised prediction and gold
    (spaces included, via ``difflib.SequenceMatcher.find_longest_match`` as KLUE does),
    F-measure with beta = 1. It is not Lin's (2004) weighted LCS with f(k) = k**1.2, which gives
    different numbers. Each question takes its best score over its gold answers; a question
    without a prediction scores 0 on both.
    """
    if not answers:
        raise ValueError("nothing to score: no questions")
    exact, rouge = [], []
    for qid, raw_golds in answers.items():
        golds = _klue_mrc_golds(raw_golds, is_impossible[qid])
        prediction = predictions.get(qid)
        if prediction is None:
            exact.append(0.0)
            rouge.append(0.0)
            continue
        pred = _klue_mrc_normalize(prediction)
        exact.append(max(float(pred == gold) for gold in golds))
        rouge.append(max(_klue_mrc_rouge_w(pred, gold) for gold in golds))
    _warn_missing(predictions, answers)
    return {"exact_match": percent(np.mean(exact)), "rouge_w": percent(np.mean(rouge))}


def _klue_mrc_golds(raw_golds: Sequence[str], impossible: bool) -> list[str]:
    # KLUE's dev JSON lists no answer for an unanswerable question and KLUE scores it against
    # [""]; plausible answers passed here for such a question are therefore ignored.
    if impossible or not raw_golds:
        return [""]
    return [_klue_mrc_normalize(gold) for gold in raw_golds]


def _klue_mrc_normalize(text: str) -> str:
    text = _KLUE_MRC_PATTERN.sub(" ", text.lower())
    text = "".join(ch for ch in text if ch not in _ASCII_PUNCTUATION)
    return " ".join(text.split())


def _klue_mrc_rouge_w(pred: str, gold: str) -> float:
    """KLUE's ROUGE-W for one normalised pair: LCCS-based F1 (beta = 1)."""
    if gold == "":
        return float(pred == gold)
    # SequenceMatcher's defaults (autojunk on) as in KLUE; they only matter for golds of 200+
    # characters.
    longest = SequenceMatcher(None, pred, gold).find_longest_match(0, len(pred), 0, len(gold))
    if longest.size == 0:
        return 0.0
    precision, recall = longest.size / len(pred), longest.size / len(gold)
    return 2 * precision * recall / (precision + recall)
