"""The shared training surface: the learning-rate schedule (by steps and by time), the precision
choice, and a time-budgeted pretraining run that anneals and resumes bit-identically."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hanlm.train import precision
from hanlm.train.checkpoint import latest_checkpoint
from hanlm.train.config import OptimConfig, PretrainConfig
from hanlm.train.engine import Hooks
from hanlm.train.log import read_metrics
from hanlm.train.optim import Schedule, lr_factor
from hanlm.train.pretrain import pretrain


def test_without_a_budget_the_schedule_is_the_step_schedule():
    cfg = OptimConfig(lr=1e-3, warmup_ratio=0.1)
    schedule = Schedule(cfg, total_steps=50)
    expected = [1e-3 * lr_factor(s, warmup=5, total=50, schedule="linear") for s in range(50)]
    assert [schedule.lr(s, elapsed=1e9) for s in range(50)] == expected
    assert expected[0] == pytest.approx(2e-4) and expected[4] == pytest.approx(1e-3)


def test_with_a_budget_the_schedule_follows_the_larger_of_step_and_time_progress():
    cfg = OptimConfig(lr=1.0, warmup_ratio=0.0)
    schedule = Schedule(cfg, total_steps=100, budget_seconds=60.0)
    assert schedule.lr(10, elapsed=0.0) == pytest.approx(0.9)  # steps ahead of time
    assert schedule.lr(10, elapsed=30.0) == pytest.approx(0.5)  # time ahead of steps
    assert schedule.lr(10, elapsed=60.0) == 0.0  # the budget spent: annealed to zero
    cosine = Schedule(OptimConfig(lr=1.0, warmup_ratio=0.0, schedule="cosine"), 100, 60.0)
    assert cosine.lr(0, elapsed=30.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


def test_no_time_schedule_makes_the_budget_a_stop_only():
    from hanlm.train.engine import Clock, budget_spent, schedule_budget

    follows = PretrainConfig(data="d", out="o", max_steps=100, max_minutes=1.0)
    stops = PretrainConfig(data="d", out="o", max_steps=100, max_minutes=1.0, time_schedule=False)
    assert schedule_budget(follows) == 60.0 and schedule_budget(stops) is None
    # The rate at a step is then the same however long the steps took ...
    schedule = Schedule(OptimConfig(lr=1.0, warmup_ratio=0.0), 100, schedule_budget(stops))
    assert schedule.lr(10, elapsed=0.0) == schedule.lr(10, elapsed=59.0) == pytest.approx(0.9)
    # ... and the budget still ends the run.
    times = iter([0.0, 61.0])
    clock = Clock(now=lambda: next(times))
    assert budget_spent(stops, clock)


def test_the_start_line_says_whether_the_schedule_follows_the_budget(tiny_pretraining_data,
                                                                   tmp_path, caplog):
    for follows, words in ((True, "the schedule follows time"), (False, "a stop only")):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="hanlm.train.pretrain"):
            pretrain(PretrainConfig(
                data=str(tiny_pretraining_data), out=str(tmp_path / str(follows)), preset="tiny",
                max_steps=1, max_minutes=5.0, time_schedule=follows, batch_size=2, eval_every=0,
                eval_batches=1, threads=1, tensorboard=False, precision="fp32", progress=False))
        assert f"within 5 minutes ({words})" in caplog.text


def test_an_explicit_precision_is_kept_and_auto_follows_the_measurement(monkeypatch):
    assert precision.choose_precision("fp32", 128, cuda=False).precision == "fp32"
    assert precision.choose_precision("bf16", 128, cuda=False).reason == "asked for"
    timings = {False: 2.0, True: 1.0}  # bf16 twice as fast
    monkeypatch.setattr(precision, "cpu_step_seconds", lambda h: (timings[False], timings[True]))
    precision._measured_on_cpu.cache_clear()
    choice = precision.choose_precision("auto", 96, cuda=False)
    assert choice.precision == "bf16" and "2.00x faster" in choice.reason
    timings[True] = 1.9  # bf16 barely faster: fp32 keeps its exact results
    precision._measured_on_cpu.cache_clear()
    choice = precision.choose_precision("auto", 96, cuda=False)
    assert choice.precision == "fp32" and "below" in choice.reason
    precision._measured_on_cpu.cache_clear()


def test_a_resumed_run_keeps_its_precision_and_an_explicit_one_still_wins(monkeypatch):
    def no_measuring(hidden):
        raise AssertionError("a resumed run with auto must not measure")

    monkeypatch.setattr(precision, "cpu_step_seconds", no_measuring)
    precision._measured_on_cpu.cache_clear()
    choice = precision.choose_precision("auto", 96, cuda=False, resumed="bf16")
    assert choice.precision == "bf16" and "resumed" in choice.reason
    choice = precision.choose_precision("fp32", 96, cuda=False, resumed="bf16")
    assert choice.precision == "fp32" and "trained in bf16" in choice.reason
    precision._measured_on_cpu.cache_clear()


def test_pretraining_resumed_with_auto_continues_in_the_precision_it_started_in(
        tiny_pretraining_data, tmp_path, monkeypatch):
    """Started in bf16, resumed with auto on a machine whose measurement now says fp32: the run
    goes on in bf16, and its checkpoints say so."""
    def run(precision_flag: str, steps: int, resume: bool) -> None:
        pretrain(PretrainConfig(
            data=str(tiny_pretraining_data), out=str(tmp_path / "run"), preset="tiny",
            max_steps=steps, save_every=2, batch_size=2, eval_every=0, threads=1,
            tensorboard=False, precision=precision_flag, progress=False, resume=resume))

    run("bf16", 2, resume=False)
    monkeypatch.setattr(precision, "cpu_step_seconds", lambda hidden: (1.0, 1.0))
    precision._measured_on_cpu.cache_clear()
    assert precision.choose_precision("auto", 128, cuda=False).precision == "fp32"
    run("auto", 4, resume=True)
    ckpt = latest_checkpoint(tmp_path / "run")
    assert ckpt.step == 4 and ckpt.state["precision"] == "bf16"
    precision._measured_on_cpu.cache_clear()


def test_the_measurement_times_a_real_step_in_both_precisions():
    fp32, bf16 = precision.cpu_step_seconds(64, tokens=64, seconds=0.01)
    assert fp32 > 0 and bf16 > 0


class _StepClock:
    """A clock that advances half a second per optimizer step, so a time-budgeted run is
    reproducible: `now` reads it, the `on_step` hook moves it."""

    def __init__(self, start_step: int = 0, crash_at: int | None = None):
        self.t, self.crash_at = start_step * 0.5, crash_at

    def on_step(self, step: int, model) -> None:
        self.t = step * 0.5
        if step == self.crash_at:
            raise RuntimeError("simulated crash")

    def hooks(self) -> Hooks:
        return Hooks(on_step=self.on_step, now=lambda: self.t)


def _timed_run(data: Path, out: Path, clock: _StepClock, *, resume: bool = False) -> None:
    # 10 s of budget at 0.5 s a step: time stops the run at step 20 of 1,000.
    pretrain(PretrainConfig(
        data=str(data), out=str(out), preset="tiny", max_steps=1000, max_minutes=10 / 60,
        batch_size=4, eval_every=0, eval_batches=1, log_every=1, save_every=8,
        keep_checkpoints=0, threads=1, tensorboard=False, precision="fp32", progress=False,
        resume=resume), clock.hooks())


@pytest.mark.slow
def test_a_time_budget_anneals_to_zero_and_resumes_bit_identically(tiny_pretraining_data,
                                                                   tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _timed_run(tiny_pretraining_data, straight, _StepClock())
    train = [r for r in read_metrics(straight) if r["split"] == "train"]
    assert train[-1]["step"] == 20
    lrs = [r["lr"] for r in train]
    assert lrs[-1] < 0.1 * max(lrs)  # annealed over the time it had, not cut off at 2% of it
    assert latest_checkpoint(straight).elapsed_seconds == pytest.approx(10.0)

    with pytest.raises(RuntimeError, match="simulated crash"):
        _timed_run(tiny_pretraining_data, resumed, _StepClock(crash_at=11))
    assert latest_checkpoint(resumed).step == 8
    _timed_run(tiny_pretraining_data, resumed, _StepClock(start_step=8), resume=True)
    a = load_file(latest_checkpoint(straight).path / "model.safetensors")
    b = load_file(latest_checkpoint(resumed).path / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["lr"] for r in read_metrics(resumed) if r["split"] == "train"] == lrs


@pytest.mark.parametrize("recipe", sorted(Path(__file__).parents[1].glob("configs/*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_recipe_reads_as_a_pretraining_config(recipe):
    from hanlm import config

    values = {**config.read_yaml(recipe), "data": "data", "out": "out"}
    cfg = config.build(PretrainConfig, values)
    assert cfg.max_minutes and cfg.objective in ("mlm", "electra")


def test_fp16_training_is_refused_without_a_gpu():
    """Both loops build their Runtime here: fp16 on a CPU is an error naming the fix, not a
    run in another precision than asked for."""
    from hanlm.errors import HanlmError
    from hanlm.train.config import FinetuneTrainingConfig
    from hanlm.train.engine import Runtime

    if torch.cuda.is_available():
        pytest.skip("a GPU trains in fp16")
    for cfg in (PretrainConfig(data="d", out="o", precision="fp16"),
                FinetuneTrainingConfig(precision="fp16")):
        with pytest.raises(HanlmError, match="fp16 needs a GPU; on a CPU use bf16 or fp32"):
            Runtime(cfg, hidden_size=64)


def test_on_a_cpu_both_loops_prepare_the_model_with_the_cpu_dropout(caplog):
    from torch import nn

    from hanlm.model.dropout import CpuDropout
    from hanlm.train.config import FinetuneTrainingConfig
    from hanlm.train.engine import Runtime

    if torch.cuda.is_available():
        pytest.skip("the CPU dropout applies on a CPU")
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1), nn.Sequential(nn.Dropout(0.0)))
    runtime = Runtime(FinetuneTrainingConfig(precision="fp32"), hidden_size=4)
    with caplog.at_level(logging.INFO, logger="hanlm.train.engine"):
        prepared, _ = runtime.prepare(model, torch.optim.AdamW(model.parameters()))
    dropouts = [m for m in runtime.accelerator.unwrap_model(prepared).modules()
                if isinstance(m, nn.Dropout)]
    assert [type(m) for m in dropouts] == [CpuDropout, CpuDropout]
    assert [m.p for m in dropouts] == [0.1, 0.0]
    assert "dropout 0.1: masks from 16 random bits an element on the CPU" in caplog.text
