"""Fine-tuning tasks: a contract test over every registered task (read -> encode -> train a few
steps -> decode -> score -> evaluate/predict agree), the split, and the shared loop (learning,
resume). Each family's encode/decode: test_tasks_families.py; bad input and model loading:
test_tasks_input.py."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tasks_fixtures import (
    FIXTURES,
    read_jsonl,
    run_finetune,
    sentiment_rows,
)
from transformers import AutoConfig

from hanlm import config
from hanlm.errors import HanlmError
from hanlm.tasks.base import ReadOptions, Task
from hanlm.tasks.modeling import HEADS
from hanlm.tasks.registry import TASKS, get_task
from hanlm.tasks.run import (
    EvaluateConfig,
    FinetuneConfig,
    PredictConfig,
    evaluate,
    predict,
)
from hanlm.tasks.sequence import Columns, SequenceTask
from hanlm.tasks.split import split_examples


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
