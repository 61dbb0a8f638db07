"""Tests for hanlm.tasks.metrics.

Three kinds of check: hand-worked cases (expected numbers derived in the comments), random
inputs with fixed seeds against references written here from the definitions (counts of
tp/fp/fn, np.corrcoef, a dynamic-programming longest common substring, a step-by-step
precision-recall curve) rather than the libraries the module calls, and edge cases.
"""

from __future__ import annotations

import math
import re
import string
from itertools import pairwise

import numpy as np
import pytest

from hanlm.tasks.metrics import (
    KLUE_NER_ENTITY_TYPES,
    accuracy,
    klue_mrc_scores,
    macro_f1,
    ner_scores,
    re_scores,
    squad_scores,
    sts_scores,
)

NER_TAGS = [f"{p}-{t}" for t in KLUE_NER_ENTITY_TYPES for p in "BI"]

# --------------------------------------------------------------------------------------------
# independent references


def ref_f1(gold: list, pred: list, cls: object) -> float | None:
    """F1 of one class from counts; None when undefined (class absent from both sides)."""
    tp = sum(g == cls and p == cls for g, p in zip(gold, pred, strict=True))
    fp = sum(g != cls and p == cls for g, p in zip(gold, pred, strict=True))
    fn = sum(g == cls and p != cls for g, p in zip(gold, pred, strict=True))
    return None if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def ref_macro_f1(gold: list, pred: list, classes: list) -> float:
    scores = [ref_f1(gold, pred, c) for c in classes]
    return 100 * float(np.mean([s for s in scores if s is not None]))


def ref_strict_entities(tags: list[str], sentence: int) -> set[tuple]:
    """Strict IOB2: an entity is B-X followed by any run of I-X; any other I- is dropped."""
    entities, i = set(), 0
    while i < len(tags):
        if not tags[i].startswith("B-"):
            i += 1
            continue
        kind, j = tags[i][2:], i + 1
        while j < len(tags) and tags[j] == f"I-{kind}":
            j += 1
        entities.add((sentence, kind, i, j))
        i = j
    return entities


def ref_entity_macro_f1(pred: list[list[str]], gold: list[list[str]]) -> float:
    gold_e = set().union(*(ref_strict_entities(s, i) for i, s in enumerate(gold)))
    pred_e = set().union(*(ref_strict_entities(s, i) for i, s in enumerate(pred)))
    scores = []
    for kind in {e[1] for e in gold_e | pred_e}:
        g = {e for e in gold_e if e[1] == kind}
        p = {e for e in pred_e if e[1] == kind}
        scores.append(2 * len(g & p) / (len(g) + len(p)))
    return 100 * float(np.mean(scores))


def ref_auprc_one_class(is_pos: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall points at each distinct threshold, from (R=0, P=1)."""
    points = [(0.0, 1.0)]
    for t in sorted(set(scores.tolist()), reverse=True):
        chosen = scores >= t
        tp = int(np.sum(chosen & is_pos))
        points.append((tp / is_pos.sum(), tp / chosen.sum()))
    return sum((r1 - r0) * (p0 + p1) / 2 for (r0, p0), (r1, p1) in pairwise(points))


def ref_korquad_normalize(s: str) -> str:
    """KorQuAD v1.0 evaluate-v1.0.py normalisation, written out step by step."""
    for ch in ["'", '"', "《", "》", "<", ">", "〈", "〉", "(", ")", "‘", "’"]:
        s = s.replace(ch, " ")
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    return " ".join(s.split())


def ref_korquad_f1(pred: str, gold: str) -> float:
    p = list(ref_korquad_normalize(pred).replace(" ", ""))
    g = list(ref_korquad_normalize(gold).replace(" ", ""))
    same = sum(min(p.count(c), g.count(c)) for c in set(p))
    return 0.0 if same == 0 else 2 * same / (len(p) + len(g))


def ref_longest_common_substring(a: str, b: str) -> int:
    best, row = 0, [0] * (len(b) + 1)
    for i in range(1, len(a) + 1):
        prev_diag, row[0] = 0, 0
        for j in range(1, len(b) + 1):
            prev_diag, row[j] = row[j], (prev_diag + 1 if a[i - 1] == b[j - 1] else 0)
            best = max(best, row[j])
    return best


def ref_klue_rouge(pred: str, gold: str) -> float:
    if gold == "":
        return float(pred == "")
    k = ref_longest_common_substring(pred, gold)
    return 0.0 if k == 0 else 2 * k / (len(pred) + len(gold))


# --------------------------------------------------------------------------------------------
# accuracy, macro F1, STS


def test_accuracy_hand_case() -> None:
    # 2 of 4 right -> 50
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == {"accuracy": 50.0}


def test_accuracy_random_against_count() -> None:
    rng = np.random.default_rng(0)
    preds, labels = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    expected = 100 * sum(int(p == g) for p, g in zip(preds, labels, strict=True)) / 500
    assert accuracy(preds, labels)["accuracy"] == pytest.approx(expected)


def test_macro_f1_hand_case() -> None:
    # preds [0,0,1,2], labels [0,1,1,2]
    # class 0: tp1 fp1 fn0 -> 2/3; class 1: tp1 fp0 fn1 -> 2/3; class 2: tp1 -> 1
    # macro = (2/3 + 2/3 + 1) / 3 = 7/9
    assert macro_f1([0, 0, 1, 2], [0, 1, 1, 2])["macro_f1"] == pytest.approx(700 / 9)
    # with a fixed list holding class 3 (absent from both sides, F1 0): (2/3+2/3+1+0)/4 = 7/12
    scores = macro_f1([0, 0, 1, 2], [0, 1, 1, 2], labels_list=[0, 1, 2, 3])
    assert scores["macro_f1"] == pytest.approx(700 / 12)


def test_macro_f1_class_absent_from_predictions() -> None:
    # gold has class 2, never predicted: class 0 F1 2/3 (tp1 fp1), class 1 F1 1, class 2 F1 0
    assert macro_f1([0, 1, 0], [0, 1, 2])["macro_f1"] == pytest.approx(100 * (2 / 3 + 1) / 3)


def test_macro_f1_random_against_counts() -> None:
    rng = np.random.default_rng(1)
    preds, labels = rng.integers(0, 7, 400), rng.integers(0, 7, 400)
    preds[preds == 6] = 5  # class 6 never predicted
    expected = ref_macro_f1(labels.tolist(), preds.tolist(), list(range(7)))
    assert macro_f1(preds, labels)["macro_f1"] == pytest.approx(expected)


def test_sts_hand_case() -> None:
    # pred [1, 2, 3.5, 4.5] mean 2.75, deviations -1.75 -0.75 0.75 1.75 (sum sq 7.25)
    # gold [0.5, 3, 2.5, 4] mean 2.5, deviations -2 0.5 0 1.5 (sum sq 6.5)
    # cross products 3.5 - 0.375 + 0 + 2.625 = 5.75 -> r = 5.75 / sqrt(7.25 * 6.5)
    # binarised at >= 3: pred [0,0,1,1], gold [0,1,0,1] (3.0 itself is 1) -> tp1 fp1 fn1 -> 0.5
    scores = sts_scores([1.0, 2.0, 3.5, 4.5], [0.5, 3.0, 2.5, 4.0])
    assert scores["pearsonr"] == pytest.approx(100 * 5.75 / math.sqrt(7.25 * 6.5))
    assert scores["f1"] == pytest.approx(50.0)


def test_sts_random_against_corrcoef_and_counts() -> None:
    rng = np.random.default_rng(2)
    gold = rng.uniform(0, 5, 300)
    pred = np.clip(gold + rng.normal(0, 1, 300), 0, 5)
    scores = sts_scores(pred, gold)
    assert scores["pearsonr"] == pytest.approx(100 * np.corrcoef(pred, gold)[0, 1])
    expected_f1 = 100 * ref_f1((gold >= 3).tolist(), (pred >= 3).tolist(), True)
    assert scores["f1"] == pytest.approx(expected_f1)


def test_sts_no_positive_anywhere_scores_zero_f1() -> None:
    assert sts_scores([1.0, 2.0, 0.5], [0.0, 2.9, 1.0])["f1"] == 0.0


def test_length_mismatch_and_empty_input_raise() -> None:
    with pytest.raises(ValueError):
        accuracy([1, 0], [1])
    with pytest.raises(ValueError):
        macro_f1([], [])


# --------------------------------------------------------------------------------------------
# KLUE-NER


def test_ner_two_entity_hand_case() -> None:
    gold = [["B-PS", "I-PS", "O", "B-LC", "I-LC"]]
    pred = [["B-PS", "I-PS", "O", "B-LC", "O"]]
    scores = ner_scores(pred, gold)
    # entities: gold PS[0,2) LC[3,5); pred PS[0,2) LC[3,4)
    # PS exact -> F1 1; LC boundary wrong -> tp0 fp1 fn1 -> 0; macro = 50
    assert scores["entity_f1"] == pytest.approx(50.0)
    # char tags present: B-PS 1, I-PS 1, B-LC 1, I-LC (gold 1, pred 0) 0 -> 3/4
    assert scores["char_f1"] == pytest.approx(75.0)
    # KLUE-baseline: the 4 above + 8 absent tags scored 1 (zero_division) + O (tp1 fp1) 2/3,
    # over 13 labels: (3 + 8 + 2/3) / 13 = 35/39
    assert scores["char_f1_klue_baseline"] == pytest.approx(100 * 35 / 39)


def test_ner_i_after_o_is_not_an_entity_strict_iob2() -> None:
    # pred "O I-PS I-PS" opens no entity in strict IOB2 (seqeval's default mode would find PS)
    scores = ner_scores([["O", "I-PS", "I-PS"]], [["O", "B-PS", "I-PS"]])
    assert scores["entity_f1"] == 0.0
    # char: B-PS gold 1 pred 0 -> 0; I-PS tp1 fp1 -> 2/3; mean 1/3
    assert scores["char_f1"] == pytest.approx(100 / 3)


def test_ner_type_change_inside_entity() -> None:
    # "B-PS I-LC": PS[0,1) then a dangling I-LC; gold PS[0,2) -> boundary wrong -> 0
    assert ner_scores([["B-PS", "I-LC"]], [["B-PS", "I-PS"]])["entity_f1"] == 0.0


def test_ner_all_o_predictions() -> None:
    scores = ner_scores([["O", "O", "O"]], [["B-PS", "I-PS", "O"]])
    assert scores["entity_f1"] == 0.0
    assert scores["char_f1"] == 0.0  # B-PS 0, I-PS 0
    # baseline: B-PS 0, I-PS 0, O tp1 fp2 -> 0.5, 10 absent tags 1 each: 10.5 / 13
    assert scores["char_f1_klue_baseline"] == pytest.approx(100 * 10.5 / 13)


def test_ner_no_entity_on_either_side_is_nan() -> None:
    scores = ner_scores([["O", "O"]], [["O", "O"]])
    assert math.isnan(scores["entity_f1"])
    assert math.isnan(scores["char_f1"])
    assert scores["char_f1_klue_baseline"] == 100.0


def test_ner_predicted_type_absent_from_gold_lowers_macro() -> None:
    # gold PS only; pred finds PS and a spurious QT -> PS 1, QT 0 -> 50
    scores = ner_scores([["B-PS", "O", "B-QT"]], [["B-PS", "O", "O"]])
    assert scores["entity_f1"] == pytest.approx(50.0)


def test_ner_random_against_references() -> None:
    rng = np.random.default_rng(3)
    vocab = [*NER_TAGS, "O", "O", "O", "O"]
    gold = [[vocab[i] for i in rng.integers(0, len(vocab), n)] for n in rng.integers(1, 40, 200)]
    pred = [
        [t if rng.random() < 0.7 else vocab[rng.integers(0, len(vocab))] for t in sentence]
        for sentence in gold
    ]
    scores = ner_scores(pred, gold)
    gold_flat = [t for s in gold for t in s]
    pred_flat = [t for s in pred for t in s]
    assert scores["entity_f1"] == pytest.approx(ref_entity_macro_f1(pred, gold))
    assert scores["char_f1"] == pytest.approx(ref_macro_f1(gold_flat, pred_flat, NER_TAGS))
    baseline = [ref_f1(gold_flat, pred_flat, t) for t in [*NER_TAGS, "O"]]
    expected = 100 * float(np.mean([1.0 if s is None else s for s in baseline]))
    assert scores["char_f1_klue_baseline"] == pytest.approx(expected)
    assert scores["char_f1"] != pytest.approx(scores["char_f1_klue_baseline"])


def test_ner_sentence_length_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        ner_scores([["O"]], [["O", "O"]])


@pytest.mark.shared_data
def test_ner_on_klue_dev(shared_data) -> None:
    text = (shared_data / "klue" / "klue-ner-v1.1_dev.tsv").read_text(encoding="utf-8")
    gold = []
    for block in re.split(r"\n\t?\n", text.strip())[:1000]:
        rows = [line.split("\t") for line in block.split("\n") if not line.startswith("##")]
        gold.append([tag for char, tag in rows if char != " "])  # KLUE drops spaces
    assert ner_scores(gold, gold) == {
        "entity_f1": 100.0,
        "char_f1": 100.0,
        "char_f1_klue_baseline": 100.0,
    }
    rng = np.random.default_rng(4)
    pred = [[t if rng.random() < 0.9 else "O" for t in s] for s in gold]
    scores = ner_scores(pred, gold)
    assert scores["entity_f1"] == pytest.approx(ref_entity_macro_f1(pred, gold))


# --------------------------------------------------------------------------------------------
# KLUE-RE

RE_NAMES = ["no_relation", "org:a", "per:b"]


def test_re_hand_case() -> None:
    labels = np.array([0, 1, 2, 1])
    probs = np.array(
        [
            [0.6, 0.3, 0.1],  # pred 0, right
            [0.2, 0.7, 0.1],  # pred 1, right
            [0.1, 0.5, 0.4],  # pred 1, gold 2
            [0.4, 0.4, 0.2],  # tie 0/1 -> lowest index 0, gold 1
        ]
    )
    scores = re_scores(probs, labels, RE_NAMES)
    # micro over {1, 2}: tp 1 (row 1); fp 1 (row 2 says 1); fn 2 (rows 2, 3);
    # row 3's no_relation prediction is no false positive. P 1/2, R 1/3 -> F1 2/5
    assert scores["micro_f1"] == pytest.approx(40.0)
    assert scores["accuracy"] == pytest.approx(50.0)
    # AUPRC, points (recall, precision) by falling threshold from (0, 1):
    # class 0 (pos row 0, top score .6): (1, 1) -> area 1
    # class 1 (pos rows 1, 3; scores .3 .7 .5 .4): .7 -> (.5, 1); .5 -> (.5, .5);
    #   .4 -> (1, 2/3): area .5*1 + 0 + .5*(.5 + 2/3)/2 = 19/24
    # class 2 (pos row 2, top score .4): area 1
    # mean (1 + 19/24 + 1) / 3 = 67/72
    assert scores["auprc"] == pytest.approx(100 * 67 / 72)


def test_re_tied_scores_auprc() -> None:
    # both classes: one positive and one negative with the same score -> one point (1, .5)
    # area from (0, 1): 1 * (1 + .5)/2 = .75. Predictions: both argmax 0 (tie) -> only row 1
    # (gold no_relation) right; class 1 never predicted -> micro F1 0
    scores = re_scores(np.full((2, 2), 0.5), np.array([1, 0]), ["no_relation", "x"])
    assert scores == pytest.approx({"micro_f1": 0.0, "auprc": 75.0, "accuracy": 50.0})


def test_re_class_without_gold_is_left_out_of_auprc() -> None:
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.3, 0.5]])
    labels = np.array([0, 1, 0])  # class 2 never gold
    # class 0 (pos rows 0, 2; scores .8 .3 .2): .8 -> (.5, 1); .3 -> (.5, .5); .2 -> (1, 2/3)
    #   area .5 + 0 + .5 * (.5 + 2/3) / 2 = 19/24
    # class 1 (pos row 1, top score .6): area 1. Mean over the 2 classes with gold: 43/48
    # (counting class 2 as sklearn's 0.5 would give (19/24 + 1 + .5) / 3 instead)
    assert re_scores(probs, labels, RE_NAMES)["auprc"] == pytest.approx(100 * 43 / 48)


def test_re_random_against_references() -> None:
    rng = np.random.default_rng(5)
    n, k = 600, 30
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = [f"rel{i}" for i in range(k)]
    names[7] = "no_relation"
    scores = re_scores(probs, labels, names)

    preds = probs.argmax(axis=1)
    kept = labels != 7
    said = preds != 7
    tp = int(np.sum((preds == labels) & kept))
    expected_micro = 100 * 2 * tp / (int(said.sum()) + int(kept.sum()))
    assert scores["micro_f1"] == pytest.approx(expected_micro)
    expected_auprc = 100 * np.mean(
        [ref_auprc_one_class(labels == c, probs[:, c]) for c in range(k)]
    )
    assert scores["auprc"] == pytest.approx(expected_auprc)
    assert scores["accuracy"] == pytest.approx(100 * np.mean(preds == labels))


def test_re_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        re_scores(np.zeros((2, 3)), np.array([0, 1]), ["a", "b", "c"])  # no no_relation
    with pytest.raises(ValueError):
        re_scores(np.zeros((2, 2)), np.array([0, 1]), RE_NAMES)  # shape


# --------------------------------------------------------------------------------------------
# KorQuAD v1.0


def test_korquad_hand_case() -> None:
    predictions = {
        "q1": "《세종대왕》",  # quotes removed -> exact
        "q2": "세종 대왕",  # EM 0 (space kept), chars 세종대왕 = gold -> F1 1
        "q3": "조선 세종",  # vs 조선의 세종: common 조선세종 4, P 4/4 R 4/5 -> 8/9
        "q4": "The Beatles",  # no article removal: EM 0; chars thebeatles vs beatles:
        # common b e e a t l s = 7, P 7/10 R 1 -> 14/17
        "q6": "",  # empty prediction -> 0, no division by zero
    }
    answers = {
        "q1": ["세종대왕"],
        "q2": ["세종대왕"],
        "q3": ["세종대왕", "조선의 세종"],  # vs 세종대왕 only 세종 common -> .5; max is 8/9
        "q4": ["Beatles"],
        "q5": ["서울"],  # no prediction -> 0, still counted
        "q6": ["서울"],
    }
    scores = squad_scores(predictions, answers)
    assert scores["exact_match"] == pytest.approx(100 / 6)
    assert scores["f1"] == pytest.approx(100 * (1 + 1 + 8 / 9 + 14 / 17) / 6)


def test_korquad_random_against_reference() -> None:
    rng = np.random.default_rng(6)
    alphabet = list("가나다라마 바사'《》()‘’.,!AbC ")
    answers, predictions, em, f1 = {}, {}, [], []
    for i in range(300):
        golds = ["".join(rng.choice(alphabet, rng.integers(1, 12))) for _ in range(2)]
        pred = "".join(rng.choice(alphabet, rng.integers(0, 12)))
        answers[str(i)], predictions[str(i)] = golds, pred
        em.append(max(ref_korquad_normalize(pred) == ref_korquad_normalize(g) for g in golds))
        f1.append(max(ref_korquad_f1(pred, g) for g in golds))
    scores = squad_scores(predictions, answers)
    assert scores["exact_match"] == pytest.approx(100 * np.mean(em))
    assert scores["f1"] == pytest.approx(100 * np.mean(f1))


@pytest.mark.shared_data
def test_korquad_gold_answers_score_100(shared_data) -> None:
    import json

    data = json.loads((shared_data / "korquad" / "KorQuAD_v1.0_dev.json").read_text("utf-8"))
    answers = {
        qa["id"]: [a["text"] for a in qa["answers"]]
        for article in data["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }
    predictions = {qid: golds[0] for qid, golds in answers.items()}
    assert squad_scores(predictions, answers) == {"exact_match": 100.0, "f1": 100.0}


# --------------------------------------------------------------------------------------------
# KLUE-MRC


def test_klue_mrc_hand_case() -> None:
    predictions = {
        "q1": "서울특별시 중구",  # LCCS 서울특별시 5; P 5/8 R 5/5 -> 10/13
        "q2": "서울 특별시",  # LCCS 특별시 3 (LCS would be 5): P 3/6 R 3/5 -> 6/11
        "q3": "",  # unanswerable, empty prediction -> EM 1, ROUGE-W 1
        "q4": "서울",  # unanswerable (plausible answer ignored) -> 0, 0
        "q5": "Seoul.",  # normalised "seoul" -> EM 1, ROUGE-W 1
        "q6": "",  # answerable, empty prediction -> 0, 0 without dividing by zero
    }
    answers = {
        "q1": ["서울특별시"],
        "q2": ["서울특별시"],
        "q3": [],
        "q4": ["서울"],
        "q5": ["seoul"],
        "q6": ["서울"],
        "q7": ["서울"],  # no prediction -> 0, 0
    }
    impossible = {q: q in ("q3", "q4") for q in answers}
    scores = klue_mrc_scores(predictions, answers, impossible)
    assert scores["exact_match"] == pytest.approx(100 * 2 / 7)
    assert scores["rouge_w"] == pytest.approx(100 * (10 / 13 + 6 / 11 + 1 + 1) / 7)


def test_klue_mrc_keeps_cjk_brackets_like_klue() -> None:
    # KLUE's normaliser keeps 《》 (its pattern is mis-bracketed): "《서울》" vs "서울" is no exact
    # match; LCCS 2 of 4 and 2 -> P .5 R 1 -> 2/3. KorQuAD's script removes them -> exact.
    scores = klue_mrc_scores({"q": "《서울》"}, {"q": ["서울"]}, {"q": False})
    assert scores == pytest.approx({"exact_match": 0.0, "rouge_w": 200 / 3})
    assert squad_scores({"q": "《서울》"}, {"q": ["서울"]})["exact_match"] == 100.0


def test_klue_mrc_random_against_reference() -> None:
    rng = np.random.default_rng(7)
    alphabet = list("가나다라 마바AB")
    answers, predictions, impossible, rouge = {}, {}, {}, []
    for i in range(300):
        qid = str(i)
        impossible[qid] = bool(rng.random() < 0.2)
        golds = ["".join(rng.choice(alphabet, rng.integers(1, 15))) for _ in range(2)]
        pred = "" if rng.random() < 0.1 else "".join(rng.choice(alphabet, rng.integers(1, 15)))
        answers[qid], predictions[qid] = golds, pred
        norm = lambda s: " ".join(s.lower().split())  # noqa: E731 - no punctuation drawn
        scored = [""] if impossible[qid] else [norm(g) for g in golds]
        rouge.append(max(ref_klue_rouge(norm(pred), g) for g in scored))
    scores = klue_mrc_scores(predictions, answers, impossible)
    assert scores["rouge_w"] == pytest.approx(100 * np.mean(rouge))


def test_mrc_empty_question_set_raises() -> None:
    with pytest.raises(ValueError):
        squad_scores({}, {})
    with pytest.raises(ValueError):
        klue_mrc_scores({}, {}, {})


def test_scores_are_plain_floats() -> None:
    results = [
        accuracy([1], [1]),
        macro_f1([1, 0], [1, 0]),
        sts_scores([1.0, 4.0], [2.0, 5.0]),
        ner_scores([["B-PS"]], [["B-PS"]]),
        re_scores(np.eye(3), np.arange(3), RE_NAMES),
        squad_scores({"q": "a"}, {"q": ["a"]}),
        klue_mrc_scores({"q": "a"}, {"q": ["a"]}, {"q": False}),
    ]
    for result in results:
        assert all(type(v) is float for v in result.values()), result
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", k) for k in result), result
