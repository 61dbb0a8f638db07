"""`hanlm evaluate` and `hanlm predict` in each precision: bf16 gives fp32's predictions (labels
equal, scores within BF16_TOLERANCE), decoding always sees fp32 outputs, `--precision auto`
measures and logs as training does, and the flag reads back from the command line and YAML."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tasks_fixtures import FIXTURES

from hanlm import config
from hanlm.cli import main
from hanlm.errors import HanlmError
from hanlm.tasks import run
from hanlm.tasks.run import EvaluateConfig, FinetuneConfig, PredictConfig, evaluate, predict
from hanlm.train import precision

# How far a bf16 probability or regression score may sit from fp32's. Measured on these
# fixtures: 1e-4 at most (6e-4 on an answer's summed start + end logits); the rest is room for
# other CPUs' kernels. The sentiment model's closest call is 0.503 against 0.497, far outside it.
BF16_TOLERANCE = 0.02
TRAIN = {"batch_size": 8, "max_len": 64, "progress": False, "tensorboard": False,
         "precision": "fp32", "keep_checkpoints": 1, "eval_every": 0}


def _finetuned(task: str, model: Path, root: Path, **overrides) -> tuple[Path, dict]:
    files = FIXTURES[task](root / "data")
    values = {"task": task, "model": str(model), "out": str(root / "run"), **TRAIN,
              **{k: str(v) for k, v in files.items()}, **overrides}
    assert run.finetune(config.build(FinetuneConfig, values)) == 0
    return root / "run", files


@pytest.fixture(scope="module")
def sentiment(tiny_model, tmp_path_factory) -> tuple[Path, dict]:
    """A model trained until its predictions are clear (the keyword-sentiment fixture)."""
    return _finetuned("nsmc", tiny_model, tmp_path_factory.mktemp("nsmc"), max_steps=40,
                      lr=3e-3, warmup_ratio=0.0)


def _predicted(task: str, out: Path, files: dict, where: Path, chosen: str, **flags) -> list:
    path = where / f"{chosen}.jsonl"
    extra = {k: str(v) for k, v in files.items() if k not in ("train", "dev")}
    assert predict(config.build(PredictConfig, {
        "task": task, "model": str(out), "input": str(files.get("dev", files["train"])),
        "output": str(path), "max_len": 64, "precision": chosen, **extra, **flags})) == 0
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_bf16_predicts_fp32s_labels_and_scores(sentiment, tmp_path):
    out, files = sentiment
    fp32 = _predicted("nsmc", out, files, tmp_path, "fp32")
    bf16 = _predicted("nsmc", out, files, tmp_path, "bf16")
    assert [p["label"] for p in bf16] == [p["label"] for p in fp32]
    for a, b in zip(fp32, bf16, strict=True):
        assert b["scores"] == pytest.approx(a["scores"], abs=BF16_TOLERANCE)
    assert bf16 != fp32, "bit-equal scores: the forward did not run in bf16"

    scored = {}
    for chosen in ("fp32", "bf16"):
        output = tmp_path / f"metrics-{chosen}.json"
        evaluate(config.build(EvaluateConfig, {"task": "nsmc", "data": str(files["dev"]),
                                               "model": str(out), "output": str(output),
                                               "max_len": 64, "precision": chosen}))
        scored[chosen] = json.loads(output.read_text(encoding="utf-8"))
        assert scored[chosen]["precision"] == chosen
    assert scored["bf16"]["metrics"] == scored["fp32"]["metrics"]


@pytest.mark.parametrize("task", ["klue-ner", "korquad", "klue-sts", "klue-re"])
def test_every_head_decodes_fp32_outputs_under_bf16(task, tiny_model, tmp_path, monkeypatch):
    """Token tags, answer spans, regression scores, relation probabilities: decoded from fp32
    arrays, written as plain JSON numbers, for the same examples as in fp32."""
    out, files = _finetuned(task, tiny_model, tmp_path, max_steps=2)
    seen: list[dict] = []
    real = run.predict_outputs

    def spy(*args, **kwargs):
        outputs = real(*args, **kwargs)
        seen.extend(outputs)
        return outputs

    monkeypatch.setattr(run, "predict_outputs", spy)
    bf16 = _predicted(task, out, files, tmp_path, "bf16")
    assert seen and all(a.dtype == np.float32 for o in seen for a in o.values())
    fp32 = _predicted(task, out, files, tmp_path, "fp32")
    assert [p["id"] for p in bf16] == [p["id"] for p in fp32]
    if task == "klue-sts":
        for a, b in zip(fp32, bf16, strict=True):
            assert b["label"] == pytest.approx(a["label"], abs=BF16_TOLERANCE)
    if task == "korquad":
        assert all(math.isfinite(p["score"]) for p in bf16)


@pytest.fixture
def measured(monkeypatch):
    """`auto`'s CPU measurement, replaced by given (fp32, bf16) seconds."""
    if torch.cuda.is_available():
        pytest.skip("on a GPU `auto` asks the device, it measures nothing")

    def use(fp32: float, bf16: float) -> None:
        precision._measured_on_cpu.cache_clear()
        monkeypatch.setattr(precision, "cpu_step_seconds", lambda hidden: (fp32, bf16))

    yield use
    precision._measured_on_cpu.cache_clear()


def test_auto_measures_and_logs_like_training(sentiment, tmp_path, measured, caplog, capsys):
    out, files = sentiment
    caplog.set_level(logging.INFO, logger="hanlm")
    for (fp32, bf16), expected, why in [((2.0, 1.0), "bf16", "2.00x faster on this CPU"),
                                        ((1.0, 1.0), "fp32", "below 1.15x")]:
        measured(fp32, bf16)
        caplog.clear()
        _predicted("nsmc", out, files, tmp_path, "auto")
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("precision")]
        assert len(lines) == 1 and lines[0].startswith(f"precision {expected}: ") and why in lines[0]
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["precision"] == expected


def test_finetuning_resumed_with_auto_keeps_the_precision_it_started_in(tiny_model, tmp_path,
                                                                        measured):
    """Measured bf16 when it started, fp32 when resumed: the run goes on in bf16 (a run that
    switched precision halfway would not be the run its checkpoints describe)."""
    measured(2.0, 1.0)
    out, _ = _finetuned("nsmc", tiny_model, tmp_path, precision="auto", max_steps=2,
                        save_every=2, keep_checkpoints=0)
    measured(1.0, 1.0)
    _finetuned("nsmc", tiny_model, tmp_path, precision="auto", max_steps=4, save_every=2,
               keep_checkpoints=0, resume=True)
    saved = {c.name: json.loads((c / "state.json").read_text(encoding="utf-8"))["precision"]
             for c in (out / "checkpoints").glob("step-*")}
    assert saved == {"step-00000002": "bf16", "step-00000004": "bf16"}


def test_fp16_needs_a_gpu(sentiment, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU runs fp16")
    out, files = sentiment
    with pytest.raises(HanlmError, match="fp16 needs a GPU"):
        _predicted("nsmc", out, files, tmp_path, "fp16")


def test_precision_flag_reads_back(monkeypatch, tmp_path):
    """`hanlm predict --precision bf16` and `hanlm evaluate --precision fp32` reach the verbs,
    default to auto, refuse other values, and survive a YAML round trip."""
    got: list = []
    for verb in ("predict", "evaluate"):
        monkeypatch.setattr(run, verb, got.append)
    common = ["--task", "nsmc", "--model", "m"]
    assert main(["predict", *common, "--input", "i", "--output", "o", "--precision", "bf16"]) == 0
    assert main(["evaluate", *common, "--data", "d", "--precision", "fp32"]) == 0
    assert main(["evaluate", *common, "--data", "d"]) == 0
    assert [c.precision for c in got] == ["bf16", "fp32", "auto"]
    with pytest.raises(SystemExit):
        main(["predict", *common, "--input", "i", "--output", "o", "--precision", "fp64"])
    config.save(got[0], tmp_path / "predict.yaml")
    assert config.build(PredictConfig, config.read_yaml(tmp_path / "predict.yaml")) == got[0]
