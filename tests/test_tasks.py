"""Fine-tuning tasks: a contract test over every registered task (read -> encode -> train a few
steps -> decode -> score -> evaluate/predict agree), plus each family's encode/decode
round trip, the readers' error messages, the split, and the shared loop (learning, resume)."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tasks_fixtures import (
    FIXTURES,
    LONG_NER,
    NER,
    build_tiny_model,
    ner_tsv,
    re_csv,
    re_records,
    sentiment_rows,
    squad,
)
from transformers import AutoConfig, AutoTokenizer

from hanlm import config
from hanlm.errors import HanlmError
from hanlm.tasks.base import ReadOptions, Task
from hanlm.tasks.modeling import HEADS, load_model
from hanlm.tasks.ner import char_tags, entity_spans
from hanlm.tasks.registry import TASKS, get_task
from hanlm.tasks.relation import mark_entities
from hanlm.tasks.run import (
    EvaluateConfig,
    FinetuneConfig,
    PredictConfig,
    evaluate,
    finetune,
    predict,
)
from hanlm.tasks.sequence import Columns, SequenceTask
from hanlm.tasks.split import split_examples

QUICK = {"max_steps": 4, "eval_every": 2, "batch_size": 4, "max_len": 64, "progress": False,
         "lr": 1e-3, "log_every": 1}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "bert")


def run_finetune(task: str, files: dict, model: Path, out: Path, **overrides) -> dict:
    values = {"task": task, "model": str(model), "out": str(out), **QUICK,
              **{k: str(v) for k, v in files.items()}, **overrides}
    assert finetune(config.build(FinetuneConfig, values)) == 0
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def file_options(files: dict) -> dict:
    return {k: str(v) for k, v in files.items() if k not in ("train", "dev")}


# ------------------------------------------------------------------------------ contract


def test_every_task_has_a_fixture_and_follows_the_protocol():
    assert set(FIXTURES) == set(TASKS)
    for task in TASKS.values():
        assert isinstance(task, Task)
        assert task.head in HEADS


def test_a_new_dataset_is_one_registry_entry(tiny_model, tmp_path, monkeypatch):
    entry = SequenceTask("my-reviews", {"json": Columns(text="review", label="stars")},
                         labels=("1", "5"), metric="macro_f1")
    monkeypatch.setitem(TASKS, "my-reviews", entry)
    rows = [{"review": t, "stars": 5 if lab == "1" else 1} for t, lab in sentiment_rows()]
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    summary = run_finetune("my-reviews", {"train": path, "dev": path}, tiny_model,
                           tmp_path / "run")
    assert set(summary["dev"]) == {"macro_f1", "accuracy"}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_contract(name, tiny_model, tmp_path):
    """read -> encode -> train -> decode -> score; the saved model and the evaluate verb agree
    with the training-time evaluation; predictions map back to the original text."""
    files = FIXTURES[name](tmp_path / "data")
    out = tmp_path / "run"
    summary = run_finetune(name, files, tiny_model, out)
    task = get_task(name)
    dev = summary["dev"]
    assert task.main_metric in dev and all(math.isfinite(v) for v in dev.values())
    assert summary["steps"] == 4 and summary["best_step"] in (2, 4)
    for f in ("config.yaml", "metrics.jsonl", "predictions.jsonl", "model/README.md",
              "model/model.safetensors", "model/tokenizer.json"):
        assert (out / f).is_file(), f
    assert not list((out / "model").glob("*.bin"))

    # the run's config reads back
    saved = config.read_yaml(out / "config.yaml")
    assert config.build(FinetuneConfig, saved).task == name

    # the best model: stock auto class, correct labels
    model_config = AutoConfig.from_pretrained(out / "model")
    labels = get_task(name).labels
    if labels:
        assert [model_config.id2label[i] for i in range(len(labels))] == list(labels)
    HEADS[task.head].from_pretrained(out / "model")

    # evaluate reproduces the training-time dev scores of the best model (both in fp32)
    data = files.get("dev", files["train"])
    opts = {**file_options(files), "precision": "fp32"}
    metrics_out = tmp_path / "eval.json"
    evaluate(config.build(EvaluateConfig, {"task": name, "data": str(data), "max_len": 64,
                                           "model": str(out), "output": str(metrics_out),
                                           **opts}))
    scores = json.loads(metrics_out.read_text(encoding="utf-8"))["metrics"]
    for key, value in dev.items():
        assert scores[key] == pytest.approx(value, abs=1e-6), key

    # predict writes one prediction per example, mapped to the original text
    pred_out = tmp_path / "pred.jsonl"
    predict(config.build(PredictConfig, {"task": name, "model": str(out / "model"),
                                         "input": str(data), "output": str(pred_out),
                                         "max_len": 64, **opts}))
    predictions = read_jsonl(pred_out)
    assert predictions == read_jsonl(out / "predictions.jsonl")
    check_offsets(task, predictions)


def check_offsets(task, predictions: list[dict]) -> None:
    assert predictions
    for p in predictions:
        if task.head == "token-classification":
            assert len(p["tags"]) == len(p["text"])
            for e in p["entities"]:
                assert p["text"][e["start"] : e["end"]] == e["text"]
        elif task.head == "question-answering":
            assert isinstance(p["answer"], str)
            if not p["impossible"]:
                assert p["answer"] and p["end"] > p["start"]
        elif getattr(task, "regression", False):
            assert isinstance(p["label"], float)
        else:
            probs = p["scores"].values() if "scores" in p else p["probs"]
            assert sum(probs) == pytest.approx(1, abs=1e-4) and 0 < p["score"] <= 1
            if task.labels:
                assert p["label"] in task.labels


# ------------------------------------------------------------------------------ learning


def test_loop_learns_sentiment(tiny_model, tmp_path):
    """Not just runs: 60 steps on the keyword-sentiment fixture reach 100% dev accuracy."""
    files = FIXTURES["nsmc"](tmp_path / "data")
    summary = run_finetune("nsmc", files, tiny_model, tmp_path / "run", max_steps=60,
                           eval_every=30, batch_size=8, lr=3e-3, warmup_ratio=0.0,
                           log_every=10)
    assert summary["dev"]["accuracy"] == 100.0
    logged = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    losses = [r["loss"] for r in logged if r["split"] == "train"]
    assert losses[-1] < losses[0] / 2


def test_resume_equals_uninterrupted(tiny_model, tmp_path):
    """k steps + --resume == N steps: same weights, bit for bit."""
    files = FIXTURES["nsmc"](tmp_path / "data")
    settings = {"max_steps": 6, "eval_every": 3, "keep_checkpoints": 0}
    run_finetune("nsmc", files, tiny_model, tmp_path / "full", **settings)
    partial = tmp_path / "partial"
    shutil.copytree(tmp_path / "full", partial)
    shutil.rmtree(partial / "checkpoints" / "step-00000006")
    run_finetune("nsmc", files, tiny_model, partial, resume=True, **settings)
    a = load_file(tmp_path / "full" / "checkpoints" / "step-00000006" / "model.safetensors")
    b = load_file(partial / "checkpoints" / "step-00000006" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] == b[key]).all(), key


def test_early_stopping_and_best_model(tiny_model, tmp_path):
    files = FIXTURES["nsmc"](tmp_path / "data")
    summary = run_finetune("nsmc", files, tiny_model, tmp_path / "run", max_steps=40,
                           eval_every=1, patience=2, lr=1e-9, warmup_ratio=0.0)
    assert summary["stopped_early"] and summary["steps"] < 40
    assert summary["best_step"] <= summary["steps"] - 2
    card = (tmp_path / "run" / "model" / "README.md").read_text(encoding="utf-8")
    assert f"Steps: {summary['best_step']} of 40" in card


def test_dropout_is_set_for_fine_tuning_without_touching_the_base_model(tiny_model, tmp_path):
    """--dropout overrides the model's config (the study's models carry the 0 they were
    pretrained with): the fine-tuned model is trained with it and saved with it."""
    files = FIXTURES["nsmc"](tmp_path / "data")
    before = (tiny_model / "config.json").read_text(encoding="utf-8")
    for dropout in (0.0, 0.25):
        run_finetune("nsmc", files, tiny_model, tmp_path / f"d{dropout}", dropout=dropout,
                     max_steps=2, eval_every=2, lr=1e-2)
        saved = AutoConfig.from_pretrained(tmp_path / f"d{dropout}" / "model")
        assert saved.hidden_dropout_prob == saved.attention_probs_dropout_prob == dropout
    assert (tiny_model / "config.json").read_text(encoding="utf-8") == before
    a = load_file(tmp_path / "d0.0" / "model" / "model.safetensors")
    b = load_file(tmp_path / "d0.25" / "model" / "model.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the dropout was applied in training
    with pytest.raises(HanlmError, match="below 1"):
        run_finetune("nsmc", files, tiny_model, tmp_path / "d1", dropout=1.0, max_steps=1)


def test_existing_run_dir_needs_resume(tiny_model, tmp_path):
    files = FIXTURES["nsmc"](tmp_path / "data")
    run_finetune("nsmc", files, tiny_model, tmp_path / "run", max_steps=1)
    with pytest.raises(HanlmError, match="--resume"):
        run_finetune("nsmc", files, tiny_model, tmp_path / "run", max_steps=1)


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
    from hanlm.tasks.modeling import load_model
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
    scores = task.score(predictions, examples)
    assert scores["exact_match"] == pytest.approx(100 * 4 / len(examples))
    with pytest.raises(HanlmError, match="unanswerable"):
        get_task("korquad").read(path, ReadOptions())


# ------------------------------------------------------------------------------ split


def test_split_by_article_is_fixed_and_disjoint(tmp_path):
    task = get_task("korquad")
    path = FIXTURES["korquad"](tmp_path)["train"]
    before = path.read_bytes()
    examples = task.read(path, ReadOptions())
    train, held = split_examples(examples, task.group_of, 7, 0.4)
    again = split_examples(examples, task.group_of, 7, 0.4)
    assert [e.id for e in held] == [e.id for e in again[1]]
    assert not {e.group for e in train} & {e.group for e in held}
    assert len(train) + len(held) == len(examples)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        path.name]


def test_evaluate_scores_the_runs_held_out_part(tiny_model, tmp_path):
    """A run trained with --split-dev on one file: evaluate on that file scores the held-out
    part by default (from RUN/config.yaml); --whole-file, --split-dev or another file override."""
    files = FIXTURES["klue-nli"](tmp_path / "data")
    out = tmp_path / "run"
    summary = run_finetune("klue-nli", files, tiny_model, out, max_steps=2)

    def scored(data: Path, model: Path, **flags) -> dict:
        output = tmp_path / "eval.json"
        evaluate(config.build(EvaluateConfig, {"task": "klue-nli", "data": str(data),
                                               "model": str(model), "output": str(output),
                                               "max_len": 64, "precision": "fp32", **flags}))
        return json.loads(output.read_text(encoding="utf-8"))

    for model in (out, out / "model"):
        result = scored(files["train"], model)
        assert result["split_dev"] == files["split_dev"]
        assert result["examples"] == summary["dev_examples"] < 8
        assert result["metrics"] == pytest.approx(summary["dev"], abs=1e-6)
    assert scored(files["train"], out, whole_file=True)["examples"] == 8
    assert scored(files["train"], out, split_dev="1:0.5")["split_dev"] == "1:0.5"
    other = tmp_path / "copy.json"
    shutil.copy(files["train"], other)
    assert scored(other, out)["examples"] == 8


def test_evaluate_writes_metrics_beside_the_model_by_default(tiny_model, tmp_path,
                                                             monkeypatch):
    """Without --output: RUN/metrics-TASK-FILE.json for a run (RUN or RUN/model), else next to
    the model directory; never the working directory. --output still wins."""
    files = FIXTURES["nsmc"](tmp_path / "data")
    run = tmp_path / "run"
    summary = run_finetune("nsmc", files, tiny_model, run, max_steps=2)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    name = f"metrics-nsmc-{Path(files['dev']).stem}.json"

    def evaluated(model: Path, **flags) -> None:
        assert evaluate(config.build(EvaluateConfig, {
            "task": "nsmc", "data": str(files["dev"]), "model": str(model), "max_len": 64,
            "precision": "fp32", **flags})) == 0

    for model in (run, run / "model"):
        evaluated(model)
        written = run / name
        assert json.loads(written.read_text(encoding="utf-8"))["metrics"] == pytest.approx(
            summary["dev"], abs=1e-6)
        written.unlink()
    standalone = tmp_path / "models" / "nsmc-bert"
    shutil.copytree(run / "model", standalone)
    evaluated(standalone)
    assert (tmp_path / "models" / name).is_file()
    assert not (standalone / name).exists()
    evaluated(run, output="chosen.json")
    assert (cwd / "chosen.json").is_file() and not (run / name).exists()
    assert sorted(p.name for p in cwd.iterdir()) == ["chosen.json"]


def test_split_and_dev_are_exclusive(tiny_model, tmp_path):
    files = FIXTURES["nsmc"](tmp_path / "data")
    with pytest.raises(HanlmError, match="split-dev"):
        run_finetune("nsmc", files, tiny_model, tmp_path / "run", split_dev="1:0.2")


# ------------------------------------------------------------------------------ bad input


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


NSMC_HEADER = "id\tdocument\tlabel\n"


@pytest.mark.parametrize("task,name,text,message,line", [
    ("nsmc", "a.txt", NSMC_HEADER + "1\t좋다\t1\n2\t싫다\t2\n", "label '2' is not in", 3),
    ("nsmc", "b.txt", "id\ttext\tlabel\n1\t좋다\t1\n", "missing column 'document'", 1),
    ("nsmc", "c.txt", NSMC_HEADER + "1\t좋다\n", "expected 3 columns", 2),
    ("klue-nli", "d.json", '[\n {"premise": "a", "hypothesis": "b", "gold_label": "neutral"},\n'
     ' {"premise": "a" "hypothesis": "b"}\n]', "malformed JSON", 3),
    ("klue-nli", "e.json", '[\n {"premise": "a", "gold_label": "neutral"}\n]',
     "no field 'hypothesis'", 2),
    ("klue-sts", "f.json", '[{"sentence1": "a", "sentence2": "b", "labels": {"label": 7.5}}]',
     r"outside \[0.0, 5.0\]", 1),
    ("klue-ner", "g.tsv", "## x\n가\tO\n나\tB-PS\textra\n\n", "expected 2 tab-separated", 3),
    ("klue-ner", "h.tsv", "가\tO\n나\tB-XX\n", "tag 'B-XX' is not in", 2),
])
def test_bad_records_name_file_and_line(tmp_path, task, name, text, message, line):
    path = _write(tmp_path, name, text)
    with pytest.raises(HanlmError, match=message) as err:
        get_task(task).read(path, ReadOptions())
    assert f"{path}:{line}:" in str(err.value)


def test_relation_span_errors(tmp_path):
    records = re_records()
    records[1]["subject_entity"]["end_idx"] += 1  # off by one: end_idx is inclusive
    records[2]["object_entity"]["start_idx"] = 500
    path = _write(tmp_path, "train.csv", re_csv(records))
    with pytest.raises(HanlmError, match=r"train.csv:3: subject_entity span .* not the word"):
        get_task("klue-re").read(path, ReadOptions())
    options = ReadOptions(on_error="skip")
    examples = get_task("klue-re").read(path, options)
    assert len(examples) == len(records) - 2
    assert [s.line for s in options.skipped] == [3, 4]
    assert "out of range" in options.skipped[1].reason


def test_mrc_answer_must_match_context(tmp_path):
    data = squad(long=False)
    data["data"][1]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] += 1
    path = _write(tmp_path, "q.json", json.dumps(data, ensure_ascii=False))
    with pytest.raises(HanlmError, match=r"qas\[0\] \(question 박지성-0\): answer '1981년' does "
                       "not match"):
        get_task("korquad").read(path, ReadOptions())


def test_cp949_file_suggests_encoding(tmp_path):
    path = _write(tmp_path, "ratings.txt", NSMC_HEADER + "1\t재미있다\t1\n", encoding="cp949")
    with pytest.raises(HanlmError, match="--encoding cp949") as err:
        get_task("nsmc").read(path, ReadOptions())
    assert f"{path}:2:" in str(err.value)
    examples = get_task("nsmc").read(path, ReadOptions(encoding="cp949"))
    assert examples[0].text == "재미있다"


def test_skip_counts_and_lists_every_bad_record(tiny_model, tmp_path):
    files = FIXTURES["nsmc"](tmp_path / "data")
    train = files["train"]
    train.write_text(train.read_text(encoding="utf-8") + "9\t나쁜 줄\t7\n10\t칸이 부족\n",
                     encoding="utf-8")
    with pytest.raises(HanlmError, match="label '7'"):
        run_finetune("nsmc", files, tiny_model, tmp_path / "strict", max_steps=1)
    summary = run_finetune("nsmc", files, tiny_model, tmp_path / "run", max_steps=1,
                           on_error="skip")
    assert summary["skipped"] == 2
    skipped = read_jsonl(tmp_path / "run" / "skipped.jsonl")
    assert [s["line"] for s in skipped] == [42, 43]
    assert all(s["file"] == str(train) for s in skipped)


@pytest.fixture
def transformers_records():
    """Every record transformers' loading logger lets through (the load report among them)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    source = logging.getLogger("transformers.modeling_utils")
    source.addHandler(handler)
    yield records
    source.removeHandler(handler)


def _reports(records) -> list[logging.LogRecord]:
    return [r for r in records if "LOAD REPORT" in r.getMessage()]


def _hanlm_lines(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "hanlm.tasks.modeling" and r.levelno == level]


@pytest.mark.parametrize("head, new", [
    ("sequence-classification", "classifier.weight, classifier.bias"),
    ("token-classification", "classifier.weight, classifier.bias"),
    ("question-answering", "qa_outputs.weight, qa_outputs.bias"),
])
def test_new_head_is_one_info_line_not_a_load_report(tiny_model, head, new, caplog,
                                                     transformers_records):
    caplog.set_level(logging.DEBUG)
    load_model(tiny_model, head, {"num_labels": 3})
    assert _hanlm_lines(caplog, logging.INFO) == [f"new head initialised: {new}"]
    assert _hanlm_lines(caplog, logging.WARNING) == []  # cls.* and the unused pooler are fine
    assert _reports(transformers_records) == []
    assert logging.getLogger("transformers.modeling_utils").filters == []  # for this load only


def test_missing_encoder_weights_still_warn(tiny_model, tmp_path, caplog, transformers_records):
    from safetensors.torch import save_file

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_model, damaged)
    state = load_file(damaged / "model.safetensors")
    lost = "bert.encoder.layer.0.attention.self.query.weight"
    del state[lost]
    save_file(state, damaged / "model.safetensors", metadata={"format": "pt"})
    caplog.set_level(logging.INFO)
    load_model(damaged, "sequence-classification", {"num_labels": 2})
    warnings = _hanlm_lines(caplog, logging.WARNING)
    assert len(warnings) == 1 and "encoder weights missing" in warnings[0]
    assert lost in warnings[0] and "classifier" not in warnings[0]
    assert _hanlm_lines(caplog, logging.INFO) == [
        "new head initialised: classifier.weight, classifier.bias"]
    assert _reports(transformers_records) == []


def test_head_reinitialised_or_absent_where_a_trained_one_is_expected(tiny_model, tmp_path,
                                                                     caplog,
                                                                     transformers_records):
    caplog.set_level(logging.INFO)
    load_model(tiny_model, "sequence-classification", {}, trained_head=True)  # evaluate a base
    warnings = _hanlm_lines(caplog, logging.WARNING)
    assert len(warnings) == 1 and "holds no trained task head" in warnings[0]
    assert "classifier.weight, classifier.bias" in warnings[0]

    tuned = tmp_path / "tuned"  # a 2-label fine-tuned model, fine-tuned again for 3 labels
    load_model(tiny_model, "sequence-classification", {"num_labels": 2}).save_pretrained(tuned)
    caplog.clear()
    load_model(tuned, "sequence-classification",
               {"num_labels": 3, "ignore_mismatched_sizes": True})
    assert _hanlm_lines(caplog, logging.INFO) == [
        "new head initialised: classifier.weight, classifier.bias (the checkpoint's had "
        "another shape)"]
    assert _hanlm_lines(caplog, logging.WARNING) == []
    assert _reports(transformers_records) == []

    # When loading fails, transformers' error refers to its report: it is shown after all.
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        load_model(tuned, "sequence-classification", {"num_labels": 3})
    assert len(_reports(transformers_records)) == 1


def test_pickle_weights_refused(tiny_model, tmp_path):
    import torch

    model_dir = tmp_path / "pickled"
    shutil.copytree(tiny_model, model_dir)
    state = load_file(model_dir / "model.safetensors")
    (model_dir / "model.safetensors").unlink()
    torch.save(state, model_dir / "pytorch_model.bin")
    files = FIXTURES["nsmc"](tmp_path / "data")
    with pytest.raises(HanlmError, match="--trust-pickle"):
        run_finetune("nsmc", files, model_dir, tmp_path / "run", max_steps=1)
    run_finetune("nsmc", files, model_dir, tmp_path / "run", max_steps=1, trust_pickle=True)


def test_jamo_tokenizer_refused(tiny_model, tmp_path):
    model_dir = tmp_path / "lower"
    shutil.copytree(tiny_model, model_dir)
    cfg_path = model_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.update(do_lower_case=True, strip_accents=None)
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    files = FIXTURES["nsmc"](tmp_path / "data")
    with pytest.raises(HanlmError, match="jamo"):
        run_finetune("nsmc", files, model_dir, tmp_path / "run", max_steps=1)


def test_unknown_task_lists_choices():
    with pytest.raises(HanlmError, match="klue-ner"):
        get_task("kluener")
