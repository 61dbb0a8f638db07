"""bf16 weights with fp32 masters (hanlm.train.bf16_weights): the copy follows the masters,
gradients reach the masters in fp32, a pretraining run with it tracks the autocast run and
resumes bit-identically, and every fine-tuning task trains with it."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tasks_fixtures import FIXTURES, run_finetune
from torch import nn

from hanlm.tasks.registry import TASKS
from hanlm.train.bf16_weights import Bf16Weights
from hanlm.train.checkpoint import latest_checkpoint
from hanlm.train.config import PretrainConfig
from hanlm.train.engine import Hooks
from hanlm.train.log import read_metrics
from hanlm.train.pretrain import pretrain


class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 10, bias=False)
        self.out.weight = self.embed.weight
        self.norm = nn.LayerNorm(4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.embed(ids))).float().logsumexp(-1).sum()


def test_the_copy_is_bf16_keeps_ties_and_follows_the_masters():
    torch.manual_seed(0)
    master = _Tied()
    copy = Bf16Weights(master)
    assert all(p.dtype == torch.bfloat16 for p in copy.module.parameters())
    assert copy.module.out.weight is copy.module.embed.weight
    with torch.no_grad():
        master.embed.weight.add_(1.0)
    copy.refresh()
    assert torch.equal(copy.module.embed.weight, master.embed.weight.to(torch.bfloat16))
    assert all(p.dtype == torch.float32 for p in master.parameters())


def test_gradients_are_summed_into_the_masters_in_fp32_and_cleared_in_the_copy():
    torch.manual_seed(0)
    master = _Tied()
    copy = Bf16Weights(master)
    ids = torch.tensor([1, 2, 3])
    copy.module(ids).backward()
    first = copy.module.embed.weight.grad.float().clone()
    copy.grads_to_master()
    assert copy.module.embed.weight.grad is None
    assert master.embed.weight.grad.dtype == torch.float32
    torch.testing.assert_close(master.embed.weight.grad, first)
    copy.module(ids).backward()  # a second micro-batch adds to the first
    copy.grads_to_master()
    torch.testing.assert_close(master.embed.weight.grad, 2 * first)
    # the fp32 reference: gradients of the bf16 copy agree with the master's own to bf16 precision
    master.zero_grad()
    master(ids).backward()
    torch.testing.assert_close(master.embed.weight.grad, first, rtol=0.05, atol=0.05)


def _crash_at(crash: int) -> Hooks:
    def on_step(step: int, model: nn.Module) -> None:
        if step == crash:
            raise RuntimeError("simulated crash")
    return Hooks(on_step=on_step)


def _run(data: Path, out: Path, *, bf16_weights: bool, resume: bool = False,
         hooks: Hooks | None = None) -> list[float]:
    pretrain(PretrainConfig(
        data=str(data), out=str(out), preset="tiny", max_steps=12, batch_size=8,
        eval_every=0, eval_batches=1, log_every=1, save_every=6, keep_checkpoints=0, threads=1,
        tensorboard=False, precision="bf16", bf16_weights=bf16_weights, progress=False,
        resume=resume, dropout=0.0), hooks)
    return [r["loss"] for r in read_metrics(out) if r["split"] == "train"]


@pytest.mark.slow
def test_pretraining_with_bf16_weights_tracks_autocast_and_saves_fp32(tiny_pretraining_data,
                                                                      tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="hanlm.train.engine"):
        copied = _run(tiny_pretraining_data, tmp_path / "copy", bf16_weights=True)
    assert "bf16 weights: forward and backward on a bf16 copy" in caplog.text
    autocast = _run(tiny_pretraining_data, tmp_path / "autocast", bf16_weights=False)
    # Both compute in bf16 with fp32 updates; they round in different places, so they agree to
    # bf16's precision, not bit for bit.
    assert copied == pytest.approx(autocast, rel=0.02)
    assert copied != autocast  # the copy ran, not autocast
    weights = load_file(latest_checkpoint(tmp_path / "copy").path / "model.safetensors")
    assert all(w.dtype == torch.float32 for w in weights.values())
    # ... and the masters are not the bf16 copy's values rounded back: updates below bf16's
    # resolution are kept.
    assert any(not torch.equal(w, w.to(torch.bfloat16).float()) for w in weights.values())


@pytest.mark.slow
def test_a_run_with_bf16_weights_resumes_bit_identically(tiny_pretraining_data, tmp_path):
    straight = _run(tiny_pretraining_data, tmp_path / "straight", bf16_weights=True)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tiny_pretraining_data, tmp_path / "resumed", bf16_weights=True, hooks=_crash_at(8))
    assert latest_checkpoint(tmp_path / "resumed").step == 6
    resumed = _run(tiny_pretraining_data, tmp_path / "resumed", bf16_weights=True, resume=True)
    a = load_file(latest_checkpoint(tmp_path / "straight").path / "model.safetensors")
    b = load_file(latest_checkpoint(tmp_path / "resumed").path / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed == straight


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_fine_tunes_with_bf16_weights(name, tiny_model, tmp_path, caplog):
    """Each head (several take their loss in the model's dtype) trains on the bf16 copy to finite
    scores and saves fp32 weights."""
    files = FIXTURES[name](tmp_path / "data")
    with caplog.at_level(logging.INFO, logger="hanlm.train.engine"):
        summary = run_finetune(name, files, tiny_model, tmp_path / "run", precision="bf16",
                               bf16_weights=True)
    assert "bf16 weights: forward and backward on a bf16 copy" in caplog.text
    assert summary["steps"] == 4
    assert all(math.isfinite(v) for v in summary["dev"].values())
    weights = load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert all(w.dtype == torch.float32 for w in weights.values())
