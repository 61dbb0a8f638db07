"""The `hanlm` command end to end on tiny data, and its error contract (one line, exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hanlm.demo import embedded_corpus


def hanlm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hanlm", *args], capture_output=True, text=True,
                          timeout=600, env={"TOKENIZERS_PARALLELISM": "false", "PATH": "/usr/bin:/bin"})


def ok(*args: str) -> str:
    r = hanlm(*args)
    assert r.returncode == 0, f"hanlm {' '.join(args)}\n{r.stderr[-3000:]}"
    return r.stdout


def one_line_error(r: subprocess.CompletedProcess, *expected: str) -> None:
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    errors = [line for line in r.stderr.strip().splitlines() if ": error: " in line]
    assert len(errors) == 1 and r.stderr.strip().endswith(errors[0]), r.stderr[-2000:]
    for text in expected:
        assert text in errors[0], errors[0]


def test_whole_pipeline_through_the_cli(tmp_path: Path):
    corpus = str(embedded_corpus())
    ok("tokenizer", "train", corpus, "--vocab-size", "500", "--min-frequency", "1", "--out", str(tmp_path / "tok"))
    ok("data", "build", corpus, "--tokenizer", str(tmp_path / "tok"), "--max-len", "32", "--out", str(tmp_path / "data"))
    (tmp_path / "run.yaml").write_text("preset: tiny\nmax_steps: 4\nbatch_size: 4\noptim:\n  lr: 0.001\n")
    ok("pretrain", "--config", str(tmp_path / "run.yaml"), "--data", str(tmp_path / "data"),
       "--out", str(tmp_path / "run"), "--no-tensorboard", "--eval-every", "2")
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "max_steps: 4" in saved and "lr: 0.001" in saved
    ok("export", str(tmp_path / "run"), "--out", str(tmp_path / "hf"))
    out = ok("fill-mask", str(tmp_path / "hf"), "대한민국은 민주[MASK]이다.", "--top-k", "3")
    assert out.splitlines()[0] == "대한민국은 민주[MASK]이다."
    assert len(out.strip().splitlines()) == 4


def test_help_lists_every_verb():
    out = ok("--help")
    for verb in ("tokenizer", "data", "pretrain", "export", "fill-mask", "finetune", "evaluate", "predict", "demo"):
        assert verb in out
    assert "--optim.lr" in ok("pretrain", "--help")


def test_bad_input_gets_one_line_errors(tmp_path: Path):
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    one_line_error(hanlm("tokenizer", "train", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "t")),
                   "empty.txt")
    one_line_error(hanlm("tokenizer", "train", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "t")),
                   "nope.txt")
    r = hanlm("pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--preset", "huge")
    assert r.returncode == 2 and "invalid choice: 'huge'" in r.stderr
    (tmp_path / "bad.yaml").write_text("max_stepz: 3\n")
    one_line_error(hanlm("pretrain", "--config", str(tmp_path / "bad.yaml"), "--data", "d", "--out", "o"),
                   "bad.yaml", "unknown key 'max_stepz'", "did you mean 'max_steps'")
    one_line_error(hanlm("pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--batch-size", "0"),
                   "batch_size", ">= 1")
    one_line_error(hanlm("pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--optim.lr", "-1"),
                   "optim.lr", "> 0")
    one_line_error(hanlm("pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "r")),
                   "not a built data directory")
