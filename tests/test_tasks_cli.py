"""End to end through the command line (subprocesses), and the fine-tuned model directories
used by stock transformers in a process that never imports hanlm."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tasks_fixtures import FIXTURES

from hanlm import config
from hanlm.tasks.relation import KLUE_RE_LABELS
from hanlm.tasks.run import (
    EvaluateConfig,
    FinetuneConfig,
    PredictConfig,
    evaluate,
    finetune,
    predict,
)

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--max-steps", "4", "--eval-every", "2", "--batch-size", "4", "--max-len", "64",
         "--lr", "1e-3", "--no-progress"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1"}


def hanlm(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hanlm", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=300)


def without_hanlm(code: str, cwd: Path) -> str:
    """Run `code` in a fresh interpreter whose sys.path cannot reach hanlm; fail if it loads."""
    script = textwrap.dedent(code) + "\nimport sys\nassert 'hanlm' not in sys.modules\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_cli_finetune_evaluate_predict(tiny_model, tmp_path):
    files = FIXTURES["nsmc"](tmp_path / "data")
    out = tmp_path / "run"
    done = hanlm("finetune", "--task", "nsmc", "--train", str(files["train"]), "--dev",
                 str(files["dev"]), "--model", str(tiny_model), "--out", str(out), *QUICK,
                 cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOAD REPORT" not in done.stderr  # transformers' table, replaced by one line:
    assert "new head initialised: classifier.weight, classifier.bias" in done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary == json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    card = (out / "model" / "README.md").read_text(encoding="utf-8")
    assert "hanlm finetune --task nsmc" in card and "accuracy" in card

    done = hanlm("evaluate", "--task", "nsmc", "--data", str(files["dev"]), "--model",
                 str(out / "model"), "--output", "m.json", "--precision", "fp32", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOAD REPORT" not in done.stderr and "initialised" not in done.stderr
    assert json.loads((tmp_path / "m.json").read_text())["metrics"] == summary["dev"]

    done = hanlm("predict", "--task", "nsmc", "--input", str(files["dev"]), "--model",
                 str(out), "--output", "p.jsonl", "--precision", "bf16", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "precision bf16: asked for" in done.stderr
    rows = (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 14 and json.loads(rows[0])["label"] in ("0", "1")


def test_cli_bad_file_exits_2_naming_file_and_line(tiny_model, tmp_path):
    files = FIXTURES["nsmc"](tmp_path / "data")
    files["train"].write_text("id\tdocument\tlabel\n1\t좋다\t1\n2\t싫다\tnegative\n",
                              encoding="utf-8")
    done = hanlm("finetune", "--task", "nsmc", "--train", str(files["train"]), "--model",
                 str(tiny_model), "--out", str(tmp_path / "run"), *QUICK, cwd=tmp_path)
    assert done.returncode == 2
    assert f"{files['train']}:3: label 'negative' is not in the label set" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_sigint_checkpoints_and_resume_matches_uninterrupted(tiny_model, tmp_path):
    """Ctrl-C: a checkpoint of the step reached and exit 130; --resume then ends on the same
    weights as a run never interrupted."""
    files = FIXTURES["nsmc"](tmp_path / "data")
    args = ["finetune", "--task", "nsmc", "--train", str(files["train"]), "--dev",
            str(files["dev"]), "--model", str(tiny_model), *QUICK, "--max-steps", "400",
            "--eval-every", "1000", "--save-every", "1000", "--log-every", "1",
            # pinned: `auto` measures in each process, and on a loaded machine the two runs
            # compared here could measure their way to different precisions
            "--precision", "fp32"]
    done = hanlm(*args, "--out", "full", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    run = tmp_path / "part"
    p = subprocess.Popen([sys.executable, "-m", "hanlm", *args, "--out", str(run)], cwd=tmp_path,
                         env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while '"train"' not in ((run / "metrics.jsonl").read_text(encoding="utf-8")
                            if (run / "metrics.jsonl").is_file() else ""):
        assert time.time() < deadline and p.poll() is None, "no training step logged"
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-3000:]
    saved = [int(c.name.split("-")[1]) for c in (run / "checkpoints").glob("step-*")]
    assert saved and max(saved) < 400, "Ctrl-C must leave a checkpoint before the end"
    assert "continue with --resume" in err and "Traceback" not in err

    done = hanlm(*args, "--out", str(run), "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    final = "checkpoints/step-00000400/model.safetensors"
    a, b = load_file(tmp_path / "full" / final), load_file(run / final)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_torchrun_shares_dev_evaluation(tiny_model, tmp_path):
    """Two processes share the dev evaluation (10 windows in 5 batches: 3 on one process, 2 on
    the other) and gather it: the dev scores and predictions equal one process's."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed")
    files = FIXTURES["klue-ner"](tmp_path / "data")
    out = tmp_path / "run"
    data = ["--train", str(files["train"]), "--dev", str(files["dev"])]
    done = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "hanlm", "finetune",
         "--task", "klue-ner", *data, "--model", str(tiny_model), "--out", str(out), *QUICK,
         "--max-len", "32", "--eval-batch-size", "2"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    predictions = (out / "predictions.jsonl").read_text(encoding="utf-8")
    assert len(predictions.splitlines()) == summary["dev_examples"] == 7

    options = {"task": "klue-ner", "model": str(out), "max_len": 32, "batch_size": 2,
               "precision": "fp32"}  # the precision of the dev evaluation
    evaluate(config.build(EvaluateConfig, {**options, "data": str(files["dev"]),
                                           "output": str(tmp_path / "one.json")}))
    one = json.loads((tmp_path / "one.json").read_text(encoding="utf-8"))["metrics"]
    assert one == pytest.approx(summary["dev"], abs=1e-9)
    predict(config.build(PredictConfig, {**options, "input": str(files["dev"]),
                                         "output": str(tmp_path / "one.jsonl")}))
    assert (tmp_path / "one.jsonl").read_text(encoding="utf-8") == predictions


def _finetuned(task: str, model: Path, root: Path) -> Path:
    files = FIXTURES[task](root / "data")
    values = {"task": task, "model": str(model), "out": str(root / "run"), "max_steps": 2,
              "batch_size": 4, "max_len": 64, "progress": False,
              **{k: str(v) for k, v in files.items()}}
    finetune(config.build(FinetuneConfig, values))
    return root / "run" / "model"


def test_text_classification_pipeline_without_hanlm(tiny_model, tmp_path):
    model = _finetuned("nsmc", tiny_model, tmp_path)
    out = without_hanlm(f"""
        from transformers import pipeline
        nlp = pipeline("text-classification", model={str(model)!r})
        print(nlp("영화가 정말 좋다")[0]["label"])
    """, tmp_path)
    assert out.strip() in ("0", "1")


def test_relation_model_is_a_stock_sequence_classifier(tiny_model, tmp_path):
    model = _finetuned("klue-re", tiny_model, tmp_path)
    out = without_hanlm(f"""
        from transformers import pipeline
        nlp = pipeline("text-classification", model={str(model)!r})
        print(nlp.tokenizer.tokenize("[S:PER]박지성[/S:PER]은 [O:LOC]서울[/O:LOC]")[0])
        print(nlp("[S:PER]박지성[/S:PER]은 [O:LOC]서울[/O:LOC]에서 태어났다.")[0]["label"])
    """, tmp_path)
    marker, label = out.split()
    assert marker == "[S:PER]"
    assert label in KLUE_RE_LABELS


def test_token_classification_pipeline_without_hanlm(tiny_model, tmp_path):
    model = _finetuned("klue-ner", tiny_model, tmp_path)
    out = without_hanlm(f"""
        import json
        from transformers import pipeline
        nlp = pipeline("token-classification", model={str(model)!r})
        text = "박지성은 서울에서 축구를 했다."
        rows = nlp(text)
        assert all(text[r["start"]:r["end"]] for r in rows)
        print(json.dumps(sorted({{r["entity"] for r in rows}})))
    """, tmp_path)
    assert all(t == "O" or t[:2] in ("B-", "I-") for t in json.loads(out))


def test_question_answering_model_without_hanlm(tiny_model, tmp_path):
    """transformers 5 removed pipeline("question-answering"); the model card's usage snippet
    (AutoModelForQuestionAnswering + offsets) must run as written."""
    model = _finetuned("korquad", tiny_model, tmp_path)
    card = (model / "README.md").read_text(encoding="utf-8")
    snippet = card.split("```python\n")[1].split("```")[0].replace("PATH/TO/THIS/DIRECTORY",
                                                                   str(model))
    out = without_hanlm(snippet, tmp_path)
    answer = out.strip()
    assert answer and answer in "서울은 대한민국의 수도이다."
