"""Each task family's encode/decode round trip (hanlm/tasks/sequence.py, ner.py, relation.py,
mrc.py): offsets, sliding windows, entity markers, answer spans."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tasks_fixtures import (
    FIXTURES,
    LONG_NER,
    NER,
    ner_tsv,
    re_csv,
    re_records,
    run_finetune,
    squad,
)
from transformers import AutoConfig, AutoTokenizer

from hanlm.errors import HanlmError
from hanlm.tasks.base import ReadOptions
from hanlm.tasks.modeling import load_model
from hanlm.tasks.ner import char_tags, entity_spans
from hanlm.tasks.registry import get_task
from hanlm.tasks.relation import mark_entities

# ------------------------------------------------------------------------------ families


def test_sequence_pairs_and_scores_read(tmp_path):
    files = FIXTURES["klue-sts"](tmp_path)
    examples = get_task("klue-sts").read(files["train"], ReadOptions())
    assert examples[0].text_pair and isinstance(examples[0].label, float)
    files = FIXTURES["klue-ynat"](tmp_path)
    ynat_csv = get_task("klue-ynat").read(files["train"], ReadOptions())
    ynat_json = get_task("klue-ynat").read(FIXTURES["klue-ynat"].__globals__["write_ynat_json"](
        tmp_path)["train"], ReadOptions())
    assert {e.label for e in ynat_csv} == {e.label for e in ynat_json} == set(
        get_task("klue-ynat").labels)


def test_generic_csv_infers_labels_and_reads_jsonl(tiny_model, tmp_path):
    files = FIXTURES["csv"](tmp_path / "data")
    run_finetune("csv", files, tiny_model, tmp_path / "run", max_steps=2)
    model_config = AutoConfig.from_pretrained(tmp_path / "run" / "model")
    assert model_config.id2label == {0: "neg", 1: "pos"}


def test_ner_offsets_round_trip(tiny_model):
    """Gold tags -> sub-word labels -> characters again: exact wherever a token does not cross
    an entity boundary (the tiny vocabulary has whole-word tokens such as '박지성은')."""
    task = get_task("klue-ner")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    path = Path(tiny_model).parent / "ner.tsv"
    path.write_text(ner_tsv(), encoding="utf-8")
    examples = task.read(path, ReadOptions())
    assert [e.text for e in examples] == [t for t, _ in NER]
    assert examples[0].id == "klue-ner-v1_dev_00000-fixture"
    features = task.encode(examples, tokenizer, 64)
    for example, feature in zip(examples, features, strict=True):
        token_tags = [task.labels[i] if i >= 0 else "O" for i in feature.targets["labels"]]
        tags = char_tags(len(example.text), feature.offsets, token_tags)
        crossing = {c for s, e in feature.offsets for c in range(s + 1, e)
                    if example.tags[c].startswith("B-") or (example.tags[c] == "O") !=
                    (example.tags[s] == "O")}
        for c, (got, want) in enumerate(zip(tags, example.tags, strict=True)):
            if c not in crossing and not example.text[c].isspace():
                assert got == want, (example.text, c)


def test_ner_decode_fills_spaces_inside_entities():
    text = "3월 1일 갔다"
    offsets = [(0, 0), (0, 2), (3, 5), (6, 8), (0, 0)]
    tags = char_tags(len(text), offsets, ["O", "B-DT", "I-DT", "O", "O"])
    assert tags[:5] == ["B-DT", "I-DT", "I-DT", "I-DT", "I-DT"]
    assert entity_spans(text, tags) == [{"start": 0, "end": 5, "label": "DT", "text": "3월 1일"}]
    # an entity may not begin with I-: repaired to B-
    assert char_tags(2, [(0, 1), (1, 2)], ["O", "I-PS"]) == ["O", "B-PS"]


def _ner_logits(task, features, label_of) -> list[dict]:
    """Logits whose argmax is ``label_of(window, gold label id or None)`` at every token."""
    outputs = []
    for j, f in enumerate(features):
        logits = np.zeros((len(f), len(task.labels)))
        for k, gold in enumerate(f.targets["labels"]):
            logits[k, label_of(j, gold if gold >= 0 else None)] = 1.0
        outputs.append({"logits": logits})
    return outputs


def test_ner_sliding_window_covers_long_sentences(tiny_model, tmp_path):
    """A sentence of 78 tokens at --max-len 16 becomes overlapping windows; decoding maps every
    character back, entities far past the first window included, exactly as one long window
    would; sentences that fit are encoded and decoded as before."""
    task = get_task("klue-ner")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    path = tmp_path / "ner.tsv"
    path.write_text(ner_tsv([*NER, LONG_NER]), encoding="utf-8")
    examples = task.read(path, ReadOptions())
    whole, windows = task.encode(examples, tokenizer, 128), task.encode(examples, tokenizer, 16)
    assert [f.example_index for f in whole] == list(range(len(examples)))
    assert whole[0].input_ids == tokenizer(examples[0].text)["input_ids"]
    long = [f for f in windows if f.example_index == len(examples) - 1]
    assert len(long) >= 6 and all(len(f) <= 16 for f in windows)

    gold = lambda j, label: task.labels.index("O") if label is None else label  # noqa: E731
    expected = task.decode(_ner_logits(task, whole, gold), whole, examples)
    predicted = task.decode(_ner_logits(task, windows, gold), windows, examples)
    assert predicted == expected
    assert task.score(predicted, examples)["entity_f1"] > 80
    first_end = max(e for _, e in long[0].offsets)
    late = [(e["start"], e["label"]) for e in predicted[-1]["entities"] if e["start"] >= first_end]
    assert len(late) >= 10 and late == [(s, t) for s, _, t in LONG_NER[1] if s >= first_end]
    assert all(len(p["tags"]) == len(p["text"]) for p in predicted)

    # each token's tag comes from the window where it is farthest from an edge: window j says
    # B-PS (j even) or B-LC (j odd); the 4 overlapping tokens split 2 + 2 between neighbours
    kind = lambda j: "PS" if j % 2 == 0 else "LC"  # noqa: E731
    by_window = _ner_logits(task, long, lambda j, _: task.labels.index(f"B-{kind(j)}"))
    tags = task.decode(by_window, long, examples)[-1]["tags"]
    for j in range(len(long) - 1):
        left = [o for o in long[j].offsets if o[0] != o[1]][-4:]
        assert left == [o for o in long[j + 1].offsets if o[0] != o[1]][:4]
        assert [tags[s][2:] for s, _ in left] == [kind(j)] * 2 + [kind(j + 1)] * 2


def test_relation_markers_and_inclusive_end(tmp_path):
    task = get_task("klue-re")
    path = tmp_path / "train.csv"
    path.write_text(re_csv(re_records()), encoding="utf-8")
    example = task.read(path, ReadOptions())[0]
    assert example.subject.word == "박지성" and example.text[example.subject.start :
                                                           example.subject.end] == "박지성"
    assert mark_entities(example) == "[S:PER]박지성[/S:PER]은 [O:LOC]서울[/O:LOC]에서 태어났다."


def test_relation_tokens_stay_whole(tiny_model, tmp_path):
    from hanlm.tasks.run import add_special_tokens

    task = get_task("klue-re")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = load_model(Path(tiny_model), task.head, task.model_kwargs())
    add_special_tokens(task, tokenizer, model)
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    tokens = tokenizer.tokenize("[S:PER]박지성[/S:PER]은 [O:LOC]서울[/O:LOC]")
    assert tokens[0] == "[S:PER]" and "[/O:LOC]" in tokens


def test_mrc_windows_and_oracle_decode(tiny_model, tmp_path):
    """Long contexts give several windows; decoding the gold positions as logits returns the
    gold answer text at its exact character span."""
    task = get_task("korquad")
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(squad(), ensure_ascii=False), encoding="utf-8")
    examples = task.read(path, ReadOptions())
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    features = task.encode(examples, tokenizer, 48)
    long = [f for f in features if examples[f.example_index].id == "long-0"]
    assert len(long) > 1
    assert any(f.targets["start_positions"] == 0 for f in long)  # windows without the answer
    outputs = []
    for f in features:
        start, end = np.full(len(f), -5.0), np.full(len(f), -5.0)
        if f.targets["start_positions"]:
            start[f.targets["start_positions"]] = end[f.targets["end_positions"]] = 5.0
        outputs.append({"start_logits": start, "end_logits": end})
    predictions = task.decode(outputs, features, examples)
    for p, e in zip(predictions, examples, strict=True):
        text, start = e.answers[0]
        assert (p["answer"], p["start"], p["end"]) == (text, start, start + len(text))
    assert task.score(predictions, examples) == {"exact_match": 100.0, "f1": 100.0}


def test_klue_mrc_unanswerable(tiny_model, tmp_path):
    task = get_task("klue-mrc")
    path = tmp_path / "mrc.json"
    path.write_text(json.dumps(squad(impossible=True), ensure_ascii=False), encoding="utf-8")
    examples = task.read(path, ReadOptions())
    assert sum(e.impossible for e in examples) == 4
    features = task.encode(examples, AutoTokenizer.from_pretrained(tiny_model), 64)
    outputs = [{"start_logits": np.eye(len(f))[0] * 9, "end_logits": np.eye(len(f))[0] * 9}
               for f in features]  # everything says "no answer"
    predictions = task.decode(outputs, features, examples)
    assert all(p["impossible"] and p["answer"] == "" for p in predictions)
    # a question left without any window has no score, and the predictions stay valid JSON
    kept = [k for k, f in enumerate(features) if f.example_index != 0]
    windowless = task.decode([outputs[k] for k in kept], [features[k] for k in kept], examples)
    assert windowless[0]["impossible"] and windowless[0]["score"] is None
    json.dumps(windowless, allow_nan=False)
    scores = task.score(predictions, examples)
    assert scores["exact_match"] == pytest.approx(100 * 4 / len(examples))
    with pytest.raises(HanlmError, match="unanswerable"):
        get_task("korquad").read(path, ReadOptions())
