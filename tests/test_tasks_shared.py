"""The real files in ../shared/data: every official file reads without a single error, and each
task runs through the CLI (finetune -> evaluate -> predict) on a small slice (--limit; nothing
is written back, KorQuAD included). Figures here are smoke checks, not results: the model is
the random tiny fixture BERT. docs/TASKS.md has the measured runs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hanlm.cli import main
from hanlm.tasks.base import ReadOptions
from hanlm.tasks.examples import read_examples
from hanlm.tasks.registry import get_task

pytestmark = pytest.mark.shared_data

QUICK = ["--max-steps", "3", "--eval-every", "3", "--batch-size", "8", "--max-len", "96",
         "--limit", "120", "--no-progress"]


@pytest.mark.parametrize("task,path,count", [
    ("nsmc", "nsmc/ratings_train.txt", 150_000),
    ("nsmc", "nsmc/ratings_test.txt", 50_000),
    ("klue-ynat", "klue-ynat/ynat_dev.csv", 9_107),
    ("klue-ynat", "klue-ynat/ynat_train_labeled_part.csv", 36_547),
    ("klue-nli", "klue/klue-nli-v1.1_dev.json", 3_000),
    ("klue-sts", "klue/klue-sts-v1.1_dev.json", 519),
    ("klue-ner", "klue/klue-ner-v1.1_dev.tsv", 5_000),
    ("klue-re", "klue-re/train.csv", 32_470),
    ("klue-re", "klue-re/dev.csv", 7_765),
    ("korquad", "korquad/KorQuAD_v1.0_dev.json", 5_774),
])
def test_official_files_read_completely(shared_data, task, path, count, caplog):
    options = ReadOptions()
    with caplog.at_level(logging.INFO):
        examples = read_examples(get_task(task), shared_data / path, options)
    assert len(examples) == count and not options.skipped
    # every file here has unique ids, so they stay the keys (none falls back to its line)
    assert len({e.id for e in examples}) == count and "keyed by their line" not in caplog.text


def test_klue_re_labels_match_relation_list(shared_data):
    listed = json.loads((shared_data / "klue-re" / "relation_list.json").read_text())["relations"]
    assert tuple(listed) == get_task("klue-re").labels


def _cli(*args: str) -> None:
    assert main(list(args)) == 0


def _run(shared_data: Path, tmp_path: Path, model: Path, task: str, train: str,
         dev: str | None = None, extra: tuple[str, ...] = ()) -> dict:
    out = tmp_path / "run"
    dev_args = ("--dev", str(shared_data / dev)) if dev else ()
    _cli("finetune", "--task", task, "--train", str(shared_data / train), *dev_args,
         "--model", str(model), "--out", str(out), *QUICK, *extra)
    summary = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    data = str(shared_data / (dev or train))
    _cli("evaluate", "--task", task, "--data", data, "--model", str(out), "--max-len", "96",
         "--limit", "120", "--output", str(tmp_path / "eval.json"), "--precision", "fp32",
         *extra)
    scores = json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))["metrics"]
    assert scores == pytest.approx(summary["dev"], nan_ok=True)
    _cli("predict", "--task", task, "--input", data, "--model", str(out), "--max-len", "96",
         "--limit", "120", "--output", str(tmp_path / "pred.jsonl"), "--precision", "fp32",
         *extra)
    assert len((tmp_path / "pred.jsonl").read_text(encoding="utf-8").splitlines()) == \
        summary["dev_examples"]
    return summary


@pytest.mark.parametrize("task,train,dev,extra", [
    ("nsmc", "nsmc/ratings_train.txt", "nsmc/ratings_test.txt", ()),
    ("klue-ynat", "klue-ynat/ynat_train_labeled_part.csv", "klue-ynat/ynat_dev.csv", ()),
    ("klue-re", "klue-re/train.csv", "klue-re/dev.csv", ()),
    ("klue-nli", "klue/klue-nli-v1.1_dev.json", None, ("--split-dev", "42:0.2")),
    ("klue-sts", "klue/klue-sts-v1.1_dev.json", None, ("--split-dev", "42:0.2")),
    ("klue-ner", "klue/klue-ner-v1.1_dev.tsv", None, ("--split-dev", "42:0.2")),
    ("korquad", "korquad/KorQuAD_v1.0_dev.json", None, ("--split-dev", "42:0.1")),
    ("csv", "klue-ynat/dacon/train_data.csv", None,
     ("--split-dev", "42:0.1", "--text-column", "title", "--label-column", "topic_idx")),
])
def test_task_on_real_data(shared_data, tiny_model, tmp_path, task, train, dev, extra):
    before = sorted(p.name for p in (shared_data / Path(train).parent).iterdir())
    summary = _run(shared_data, tmp_path, tiny_model, task, train, dev, extra)
    assert summary["steps"] == 3 and get_task(task).main_metric in summary["dev"]
    assert sorted(p.name for p in (shared_data / Path(train).parent).iterdir()) == before
