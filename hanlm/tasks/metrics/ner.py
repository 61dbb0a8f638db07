"""KLUE-NER metrics: entity-level and character-level macro F1 over character BIO tags."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sklearn.metrics import f1_score as sklearn_f1_score

from hanlm.tasks.metrics.common import percent

KLUE_NER_ENTITY_TYPES: tuple[str, ...] = ("PS", "LC", "OG", "DT", "TI", "QT")
"""KLUE-NER entity types: person, location, organisation, date, time, quantity."""


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
    # Imported here, not at the top: every task imports this package, and only KLUE-NER needs
    # seqeval; a stock PyTorch image (the GPU machines' has no seqeval) runs the other tasks.
    from seqeval.metrics import f1_score as seqeval_f1_score
    from seqeval.scheme import IOB2, Entities

    pred_lists = [list(sentence) for sentence in pred_tags]
    gold_lists = [list(sentence) for sentence in gold_tags]
    kinds = Entities(gold_lists, IOB2).unique_tags | Entities(pred_lists, IOB2).unique_tags
    if not kinds:
        return math.nan
    score = seqeval_f1_score(
        gold_lists, pred_lists, average="macro", mode="strict", scheme=IOB2, zero_division=0
    )
    return percent(score)


def _char_macro_f1(pred_flat: list[str], gold_flat: list[str], entity_tags: list[str]) -> float:
    present = set(gold_flat) | set(pred_flat)
    scored = [tag for tag in entity_tags if tag in present]
    if not scored:
        return math.nan
    score = sklearn_f1_score(gold_flat, pred_flat, labels=scored, average="macro")
    return percent(score)


def _char_macro_f1_klue_baseline(
    pred_flat: list[str], gold_flat: list[str], entity_tags: list[str]
) -> float:
    # Reproduces the published code: "O" counted, and a tag absent from both sides scores 1.
    labels = [*entity_tags, "O"]
    score = sklearn_f1_score(
        gold_flat, pred_flat, labels=labels, average="macro", zero_division=1.0
    )
    return percent(score)
