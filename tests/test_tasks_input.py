"""Bad input to the fine-tuning verbs (a clear error naming file, line and problem, or the
record skipped and listed) and what loading a model for a task says and refuses."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tasks_fixtures import (
    FIXTURES,
    re_csv,
    re_records,
    read_jsonl,
    run_finetune,
    squad,
)

from hanlm.errors import HanlmError
from hanlm.tasks.base import ReadOptions
from hanlm.tasks.modeling import load_model
from hanlm.tasks.registry import get_task

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
