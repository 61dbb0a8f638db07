"""Official evaluation metrics for hanlm's fine-tuning tasks, computed offline.

Every public function is pure and returns ``dict[str, float]`` with stable lower_snake_case
keys.

Scale convention: every score is a **percentage, 0-100** (Pearson r: -100 to 100), the scale
the KLUE leaderboard (KLUE-baseline multiplies every metric by 100) and the KorQuAD v1.0
evaluation script report, so hanlm's numbers read directly against published ones.

Each definition follows the official code, cited in its docstring:

- KLUE: ``klue_baseline/metrics/functional.py`` and ``klue_baseline/metrics/utils.py`` in
  KLUE-benchmark/KLUE-baseline (commit 443c38b), with the task definitions of the KLUE paper
  (Park et al., 2021, arXiv:2105.09680).
- KorQuAD v1.0: the official ``evaluate-v1.0.py`` ("KorQuAD v1.0에 대한 공식 평가 스크립트"),
  derived from SQuAD v1.1's script.

Where KLUE's code and its documentation disagree on what is measured (character F1 with or
without ``O``), the documented figure comes under the plain key and the code's figure under a
labelled one (``char_f1_klue_baseline``). Where the code has a quirk that no document
contradicts (KLUE-MRC's normaliser), the code is reproduced as written, since published
figures were made with it. Cases the official code leaves undefined (a class with no gold
example for AUPRC, no entity on either side for NER) are decided in the function's docstring.
"""

from __future__ import annotations

import logging
import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from difflib import SequenceMatcher

import numpy as np
import numpy.typing as npt
from scipy.stats import pearsonr
from seqeval.metrics import f1_score as seqeval_f1_score
from seqeval.scheme import IOB2, Entities
from sklearn.metrics import auc, precision_recall_curve
from sklearn.metrics import f1_score as sklearn_f1_score

logger = logging.getLogger(__name__)

KLUE_NER_ENTITY_TYPES: tuple[str, ...] = ("PS", "LC", "OG", "DT", "TI", "QT")
"""KLUE-NER entity types: person, location, organisation, date, time, quantity."""

KLUE_STS_THRESHOLD = 3.0
"""KLUE-STS binarisation threshold: a similarity >= 3.0 counts as paraphrase (label 1)."""


# --------------------------------------------------------------------------------------------
# shared helpers


def _percent(value: float) -> float:
    return float(value) * 100.0


def _as_same_length_arrays(
    preds: npt.ArrayLike, labels: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Return both inputs as 1-D arrays, or raise if they are empty or differ in length."""
    preds_arr, labels_arr = np.asarray(preds).ravel(), np.asarray(labels).ravel()
    if preds_arr.shape != labels_arr.shape:
        raise ValueError(f"{preds_arr.size} predictions for {labels_arr.size} labels")
    if preds_arr.size == 0:
        raise ValueError("nothing to score: no predictions and no labels")
    return preds_arr, labels_arr


# --------------------------------------------------------------------------------------------
# classification: NSMC, KLUE-NLI, KLUE-YNAT, KLUE-STS


def accuracy(preds: npt.ArrayLike, labels: npt.ArrayLike) -> dict[str, float]:
    """Accuracy in percent: NSMC and KLUE-NLI (KLUE-baseline ``klue_nli_acc``)."""
    preds_arr, labels_arr = _as_same_length_arrays(preds, labels)
    return {"accuracy": _percent(np.mean(preds_arr == labels_arr))}


def macro_f1(
    preds: npt.ArrayLike, labels: npt.ArrayLike, labels_list: Sequence | None = None
) -> dict[str, float]:
    """Macro-averaged F1 in percent: KLUE-YNAT (KLUE-baseline ``ynat_macro_f1``).

    KLUE averages over the classes that occur in ``labels`` or ``preds``. Pass ``labels_list``
    to average over a fixed class list instead; a listed class absent from both sides then
    scores 0 (sklearn's value for an undefined F1), so it lowers the average.
    """
    preds_arr, labels_arr = _as_same_length_arrays(preds, labels)
    score = sklearn_f1_score(
        labels_arr,
        preds_arr,
        labels=None if labels_list is None else list(labels_list),
        average="macro",
        zero_division=0.0,
    )
    return {"macro_f1": _percent(score)}


def sts_scores(
    pred_scores: npt.ArrayLike, gold_scores: npt.ArrayLike, threshold: float = KLUE_STS_THRESHOLD
) -> dict[str, float]:
    """KLUE-STS: Pearson r and binary F1 after thresholding, both in percent.

    Source: KLUE-baseline ``klue_sts_pearsonr`` and ``klue_sts_f1``: both the predicted and the
    gold similarity (0-5) become 1 when ``>= threshold`` (3.0) and 0 otherwise; F1 is that of
    class 1. ``pearsonr`` is NaN when either side is constant (r is undefined; scipy warns).
    """
    pred_arr, gold_arr = _as_same_length_arrays(pred_scores, gold_scores)
    pred_arr, gold_arr = pred_arr.astype(float), gold_arr.astype(float)
    r = pearsonr(pred_arr, gold_arr).statistic
    f1 = sklearn_f1_score(
        (gold_arr >= threshold).astype(int),
        (pred_arr >= threshold).astype(int),
        average="binary",
        zero_division=0.0,
    )
    return {"pearsonr": _percent(r), "f1": _percent(f1)}


# --------------------------------------------------------------------------------------------
# KLUE-NER: character-level BIO tags


def ner_scores(
    pred_tags: Sequence[Sequence[str]],
    gold_tags: Sequence[Sequence[str]],
    entity_types: Sequence[str] = KLUE_NER_ENTITY_TYPES,
) -> dict[str, float]:
    """KLUE-NER entity-level and character-level macro F1, in percent.

    One inner list per sentence, one BIO tag per character (``B-PS``, ``I-PS``, ..., ``O``).
    KLUE-baseline scores the non-space characters only (it drops the tags of ``" "``); pass
    tags without the spaces to match published figures exactly.

    - ``entity_f1``: KLUE-baseline ``klue_ner_entity_macro_f1``, i.e. seqeval
      ``f1_score(average="macro", mode="strict", scheme=IOB2)``: an entity counts only when type,
      start and end all match, averaged over the entity types found in gold or predictions.
      Strict IOB2 (not seqeval's default mode) means an entity must begin with ``B-``: an
      ``I-X`` after ``O`` or after another type begins nothing and is ignored, whereas the
      default (CoNLL) mode would open a new entity there.
    - ``char_f1``: macro F1 over the character tags of the entity types (``B-X``, ``I-X``),
      excluding ``O``, as the KLUE paper and KLUE-baseline's docstring define it; averaged over
      the tags that occur in gold or predictions.
    - ``char_f1_klue_baseline``: what ``klue_ner_char_macro_f1`` actually computes (it passes
      all 13 labels, ``O`` included, with ``zero_division=True``; KLUE-baseline PR #7). Use it
      only to compare with figures published from that code.

    Both macro averages are NaN when neither side holds any entity (an average over no
    classes). KLUE-baseline also concatenates all sentences into one sequence before seqeval,
    with the ``[CLS]``/``[SEP]`` positions in between labelled ``O``; that equals scoring per
    sentence, as here, whenever the model tags those special positions ``O``.
    """
    _check_tag_lengths(pred_tags, gold_tags)
    gold_flat = [tag for sentence in gold_tags for tag in sentence]
    pred_flat = [tag for sentence in pred_tags for tag in sentence]
    entity_tags = [f"{prefix}-{kind}" for kind in entity_types for prefix in ("B", "I")]
    return {
        "entity_f1": _entity_macro_f1(pred_tags, gold_tags),
        "char_f1": _char_macro_f1(pred_flat, gold_flat, entity_tags),
        "char_f1_klue_baseline": _char_macro_f1_klue_baseline(pred_flat, gold_flat, entity_tags),
    }


def _check_tag_lengths(
    pred_tags: Sequence[Sequence[str]], gold_tags: Sequence[Sequence[str]]
) -> None:
    if len(pred_tags) != len(gold_tags):
        raise ValueError(f"{len(pred_tags)} predicted sentences for {len(gold_tags)} gold ones")
    for i, (pred, gold) in enumerate(zip(pred_tags, gold_tags, strict=True)):
        if len(pred) != len(gold):
            raise ValueError(f"sentence {i}: {len(pred)} predicted tags for {len(gold)} gold")
    if not any(len(gold) for gold in gold_tags):
        raise ValueError("nothing to score: no tags")


def _entity_macro_f1(
    pred_tags: Sequence[Sequence[str]], gold_tags: Sequence[Sequence[str]]
) -> float:
    pred_lists = [list(sentence) for sentence in pred_tags]
    gold_lists = [list(sentence) for sentence in gold_tags]
    kinds = Entities(gold_lists, IOB2).unique_tags | Entities(pred_lists, IOB2).unique_tags
    if not kinds:
        return math.nan
    score = seqeval_f1_score(
        gold_lists, pred_lists, average="macro", mode="strict", scheme=IOB2, zero_division=0
    )
    return _percent(score)


def _char_macro_f1(pred_flat: list[str], gold_flat: list[str], entity_tags: list[str]) -> float:
    present = set(gold_flat) | set(pred_flat)
    scored = [tag for tag in entity_tags if tag in present]
    if not scored:
        return math.nan
    score = sklearn_f1_score(gold_flat, pred_flat, labels=scored, average="macro")
    return _percent(score)


def _char_macro_f1_klue_baseline(
    pred_flat: list[str], gold_flat: list[str], entity_tags: list[str]
) -> float:
    # Reproduces the published code: "O" counted, and a tag absent from both sides scores 1.
    labels = [*entity_tags, "O"]
    score = sklearn_f1_score(
        gold_flat, pred_flat, labels=labels, average="macro", zero_division=1.0
    )
    return _percent(score)


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
        "accuracy": _percent(np.mean(preds == labels_arr)),
    }


def _re_micro_f1(
    preds: np.ndarray, labels: np.ndarray, n_classes: int, no_relation_index: int
) -> float:
    scored = [c for c in range(n_classes) if c != no_relation_index]
    score = sklearn_f1_score(labels, preds, labels=scored, average="micro", zero_division=0.0)
    return _percent(score)


def _re_auprc(probs: np.ndarray, labels: np.ndarray) -> float:
    areas = []
    for c in range(probs.shape[1]):
        is_c = labels == c
        if not is_c.any():
            continue
        precision, recall, _ = precision_recall_curve(is_c.astype(int), probs[:, c])
        areas.append(auc(recall, precision))
    return _percent(np.mean(areas))


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
    return {"exact_match": _percent(np.mean(exact)), "f1": _percent(np.mean(f1))}


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
    return {"exact_match": _percent(np.mean(exact)), "rouge_w": _percent(np.mean(rouge))}


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
