"""Pretraining end to end on the embedded corpus: CLI run, kill + resume, several processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from hanlm.train.log import read_metrics

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
TINY = ["--preset", "tiny", "--batch-size", "8", "--eval-every", "0", "--no-tensorboard",
        "--log-every", "1", "--warmup-steps", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def data_dir(tiny_pretraining_data) -> Path:
    return tiny_pretraining_data


def hanlm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "hanlm", *args], env=ENV, capture_output=True,
                            text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"hanlm {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    last = sorted((run / "checkpoints").glob("step-*"))[-1]
    return load_file(last / "model.safetensors")


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_cli_run_logs_evaluates_and_checkpoints(data_dir, tmp_path):
    run = tmp_path / "run"
    result = hanlm("pretrain", "--data", str(data_dir), "--out", str(run), *TINY, "--max-steps",
                   "6", "--save-every", "4", "--eval-every", "3")
    assert "lr 2e-3 (the tiny preset's default)" in result.stderr
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000004", "step-00000006"]
    rows = read_metrics(run)
    train = [r for r in rows if r["split"] == "train"]
    evals = [r for r in rows if r["split"] == "eval"]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    assert evals and {"mlm_accuracy", "nsp_accuracy", "mlm_loss", "mlm_masked_loss",
                      "mlm_unigram_loss", "mlm_context_gain"} <= evals[0].keys()
    assert all(r["tokens_per_second"] > 0 for r in train)
    saved = (run / "config.yaml").read_text()
    assert "max_steps: 6" in saved and "lr: 0.002" in saved  # the resolved rate, for --resume
    assert "objective: bert" in saved  # resolved from the data, not `None`
    state = json.loads((run / "checkpoints" / "step-00000006" / "state.json").read_text())
    assert state["loop"]["samples_seen"] == 6 * 8
    assert state["elapsed_seconds"] > 0


def test_the_default_lr_is_the_model_sizes():
    from hanlm.train.config import default_lr

    sizes = ("tiny", "mini", "small", "medium", "base")
    for objective in ("bert", "mlm"):
        assert [default_lr(p, objective) for p in sizes] == [2e-3, 5e-4, 5e-4, 1e-4, 1e-4]
    assert [default_lr(p, "electra") for p in sizes] == [2e-3, 5e-4, 5e-4, 2e-4, 2e-4]


def _model_of(layers: int, hidden: int) -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(num_hidden_layers=layers, hidden_size=hidden))


def test_an_unset_lr_resolves_to_the_presets_and_a_given_one_wins(tmp_path):
    from hanlm.train.config import OptimConfig
    from hanlm.train.pretrain import PretrainConfig, resolve_lr

    def resolved(objective="bert", model=None, resumed=None, **fields):
        cfg = PretrainConfig(data="d", out="o", **fields)
        new, source = resolve_lr(cfg, objective, model, resumed)
        assert cfg.optim.lr == fields.get("optim", OptimConfig()).lr  # the caller's is left as it was
        return new.optim.lr, source

    assert resolved(preset="tiny") == (2e-3, "the tiny preset's default")
    assert resolved(preset="mini") == (5e-4, "the mini preset's default")
    assert resolved("electra", preset="base") == (2e-4, "the base preset's default with electra")
    assert resolved(preset="tiny", optim=OptimConfig(lr=1e-3)) == (1e-3, "given")
    # --init-from: the loaded model's size, not --preset's
    assert resolved(preset="mini", init_from="m", model=_model_of(12, 768)) == (
        1e-4, "the base preset's default, the --init-from model's size")
    lr, source = resolved(preset="mini", init_from="m", model=_model_of(6, 384))
    assert lr == 5e-4 and "no preset's size: give --lr" in source
    # --resume: the run's own rate (an earlier default), not today's
    (tmp_path / "config.yaml").write_text("preset: tiny\nlr: 0.0005\n")
    assert resolved(preset="tiny", resumed=tmp_path / "config.yaml") == (5e-4, "the resumed run's")
    assert resolved(preset="tiny", resumed=tmp_path / "none.yaml")[0] == 2e-3


def test_a_yaml_config_without_lr_gets_the_presets(tmp_path):
    from hanlm import config
    from hanlm.train.pretrain import PretrainConfig, resolve_lr

    def lr(yaml_text: str) -> float:
        (tmp_path / "run.yaml").write_text(yaml_text)
        values = {**config.read_yaml(tmp_path / "run.yaml"), "data": "d", "out": "o"}
        return resolve_lr(config.build(PretrainConfig, values), "mlm", None)[0].optim.lr

    assert lr("preset: base\nobjective: mlm\n") == 1e-4
    assert lr("preset: base\nlr: 3e-4\n") == 3e-4


def test_help_states_the_lr_of_each_preset():
    text = " ".join(hanlm("pretrain", "--help").stdout.split())
    assert ("(default: by --preset, tiny 2e-3, mini 5e-4, small 5e-4, medium 1e-4, base 1e-4; "
            "the electra objective medium 2e-4, base 2e-4;") in text
    assert "peak learning rate (default: 5e-05)" in " ".join(hanlm("finetune", "--help").stdout.split())


def test_pretraining_dropout_is_apart_from_the_exported_config(data_dir, tmp_path):
    """Default: no dropout while pretraining, BERT's 0.1 in the config that fine-tuning reads."""
    from torch import nn

    from hanlm.data.shards import read_meta
    from hanlm.tokenizer import KoreanTokenizer
    from hanlm.train.pretrain import PretrainConfig, build_model

    tok = KoreanTokenizer.load(data_dir / "tokenizer")
    model = build_model(PretrainConfig(data=str(data_dir), out=str(tmp_path), preset="tiny"), tok,
                         read_meta(data_dir), torch.zeros(tok.vocab_size))
    rates = {m.p for m in model.modules() if isinstance(m, nn.Dropout)}
    assert rates == {0.0}
    assert model.config.hidden_dropout_prob == 0.1 == model.config.attention_probs_dropout_prob
    run = tmp_path / "run"
    hanlm("pretrain", "--data", str(data_dir), "--out", str(run), *TINY, "--max-steps", "2")
    hanlm("export", str(run), "--out", str(tmp_path / "model"))
    exported = json.loads((tmp_path / "model" / "config.json").read_text())
    assert exported["hidden_dropout_prob"] == 0.1 == exported["attention_probs_dropout_prob"]


def test_existing_run_is_refused_without_resume_or_overwrite(data_dir, tmp_path):
    run = tmp_path / "run"
    hanlm("pretrain", "--data", str(data_dir), "--out", str(run), *TINY, "--max-steps", "1")
    again = hanlm("pretrain", "--data", str(data_dir), "--out", str(run), *TINY, "--max-steps", "1",
                  check=False)
    assert again.returncode == 2
    assert "already holds a run" in again.stderr and "Traceback" not in again.stderr
    other = hanlm("pretrain", "--data", str(data_dir), "--out", str(run), *TINY, "--max-steps", "1",
                  "--preset", "mini", "--resume", check=False)
    assert other.returncode == 2 and "preset" in other.stderr


def _kill_when(run: Path, process: subprocess.Popen, step: int) -> None:
    deadline = time.time() + 300
    while time.time() < deadline:
        done = [int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*")] if (run / "checkpoints").is_dir() else []
        if done and max(done) >= step:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return
        if process.poll() is not None:
            raise AssertionError("run finished before it could be killed")
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
def test_kill_and_resume_is_bit_identical(data_dir, tmp_path):
    # --dropout 0.1: dropout draws from the RNG, whose state the checkpoint must restore too.
    # The batch-size ramp spans both kills: a resumed run must find where its step's batch starts.
    args = ["--data", str(data_dir), *TINY, "--max-steps", "60", "--save-every", "5", "--dropout", "0.1",
            "--batch-ramp-steps", "40", "--batch-ramp-start", "2"]
    hanlm("pretrain", *args, "--out", str(tmp_path / "straight"))
    resumed = tmp_path / "resumed"
    for kill_at in (10, 35):
        p = subprocess.Popen([sys.executable, "-m", "hanlm", "pretrain", *args, "--out", str(resumed),
                              *(["--resume"] if kill_at != 10 else [])],
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _kill_when(resumed, p, kill_at)
    hanlm("pretrain", *args, "--out", str(resumed), "--resume")
    assert_identical(final_weights(tmp_path / "straight"), final_weights(resumed))
    straight_loss = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "straight") if r["split"] == "train"}
    resumed_loss = {r["step"]: r["loss"] for r in read_metrics(resumed) if r["split"] == "train"}
    assert all(resumed_loss[s] == straight_loss[s] for s in resumed_loss)


@pytest.mark.slow
def test_sigint_saves_a_checkpoint(data_dir, tmp_path):
    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "hanlm", "pretrain", "--data", str(data_dir), "--out",
                          str(run), *TINY, "--max-steps", "100000", "--save-every", "100000"],
                         env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():
        assert time.time() < deadline and p.poll() is None
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    assert list((run / "checkpoints").glob("step-*")), "Ctrl-C must leave a checkpoint"


@pytest.mark.slow
def test_torchrun_two_processes_match_one_with_accumulation(data_dir, tmp_path):
    if shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists():
        pytest.skip("torchrun not installed")
    # --no-bf16-weights: two processes compute bf16 by autocast, so one must too to match them.
    common = ["--data", str(data_dir), *TINY, "--max-steps", "5", "--batch-size", "4", "--dropout", "0",
              "--batch-ramp-steps", "3", "--batch-ramp-start", "2", "--no-bf16-weights"]
    hanlm("pretrain", *common, "--grad-accum", "2", "--out", str(tmp_path / "one"))
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "hanlm", "pretrain",
         *common, "--out", str(tmp_path / "two")],
        env=ENV, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    one = [r["loss"] for r in read_metrics(tmp_path / "one") if r["split"] == "train"]
    two = [r["loss"] for r in read_metrics(tmp_path / "two") if r["split"] == "train"]
    assert len(one) == len(two) == 5
    assert one == pytest.approx(two, rel=1e-4)
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-5)


def test_context_gain_is_zero_for_a_model_that_only_knows_token_frequencies(data_dir):
    """The diagnostic that tells a model on the MLM plateau from one that reads the context:
    a decoder that ignores the hidden state and outputs the unigram log-frequencies scores
    exactly the unigram loss on the [MASK] positions, i.e. a context gain of 0."""
    from hanlm.data.batches import Collator
    from hanlm.data.masking import MaskingConfig
    from hanlm.data.shards import ShardReader
    from hanlm.model.bert import build_bert_config, new_pretraining_model
    from hanlm.tokenizer import KoreanTokenizer
    from hanlm.train.pretrain import evaluate, unigram_log_probs

    tok = KoreanTokenizer.load(data_dir / "tokenizer")
    unigram = unigram_log_probs(ShardReader(data_dir, "train"), tok.vocab_size, tok.special_ids)
    assert torch.isclose(unigram.exp().sum(), torch.tensor(1.0, dtype=unigram.dtype))
    model = new_pretraining_model(build_bert_config("tiny", vocab_size=tok.vocab_size), 0)
    head = model.bert.cls.predictions
    with torch.no_grad():
        head.decoder.weight.zero_()  # tied to the input embeddings: the encoder sees zeros too
        head.bias.copy_(unigram.float())
    collate = Collator(pad_id=tok.pad_id, mask_id=tok.mask_id, special_ids=tok.special_ids,
                       vocab_size=tok.vocab_size, masking=MaskingConfig(), seed=0)
    metrics = evaluate(model, ShardReader(data_dir, "eval"), collate, batch_size=4, batches=3,
                       device=torch.device("cpu"), unigram_log_probs=unigram)
    assert metrics["mlm_unigram_loss"] > 1.0
    assert metrics["mlm_masked_loss"] == pytest.approx(metrics["mlm_unigram_loss"], abs=1e-4)
    assert metrics["mlm_context_gain"] == pytest.approx(0.0, abs=1e-4)


def test_a_new_model_predicts_token_frequencies_before_its_first_step(data_dir, tmp_path):
    """Default --mlm-bias-init unigram: the MLM bias (tied to the decoder's) starts at the train
    split's log frequencies, so step 0 already scores the unigram loss instead of ln V;
    `zeros` keeps Hugging Face's start, and --init-from keeps the loaded model's bias."""
    from hanlm.data.shards import ShardReader, read_meta
    from hanlm.tokenizer import KoreanTokenizer
    from hanlm.train.pretrain import PretrainConfig, build_model, unigram_log_probs

    tok = KoreanTokenizer.load(data_dir / "tokenizer")
    unigram = unigram_log_probs(ShardReader(data_dir, "train"), tok.vocab_size, tok.special_ids)

    def bias(**overrides) -> torch.Tensor:
        cfg = PretrainConfig(data=str(data_dir), out=str(tmp_path), preset="tiny", **overrides)
        head = build_model(cfg, tok, read_meta(data_dir), unigram).bert.cls.predictions
        assert head.decoder.bias is head.bias
        return head.bias.detach()

    assert torch.allclose(bias(), unigram.float())
    assert unigram.max() - unigram.min() > 3  # frequencies that differ, so the check can fail
    assert torch.equal(bias(mlm_bias_init="zeros"), torch.zeros(tok.vocab_size))
    run = tmp_path / "run"
    hanlm("pretrain", "--data", str(data_dir), "--out", str(run), *TINY, "--max-steps", "1",
          "--mlm-bias-init", "zeros")
    hanlm("export", str(run), "--out", str(tmp_path / "model"))
    loaded = bias(init_from=str(tmp_path / "model"))
    assert not torch.allclose(loaded, unigram.float(), atol=0.5)
    assert torch.equal(loaded, load_file(tmp_path / "model" / "model.safetensors")["cls.predictions.bias"])
