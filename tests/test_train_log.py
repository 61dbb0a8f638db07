"""The run log's TensorBoard side: a resumed run hides the events the killed run wrote past the
checkpoint it resumes from (SummaryWriter's purge_step), in MetricsLog, `pretrain` and the
fine-tuning loop."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from tasks_fixtures import FIXTURES, build_tiny_model

from hanlm import config
from hanlm.tasks.run import FinetuneConfig, finetune
from hanlm.train.log import MetricsLog, purge_step
from hanlm.train.pretrain import PretrainConfig, pretrain

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="tensorboard is not installed (it is a hanlm dependency; the purge is TensorBoard's)",
)


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of `tag` as TensorBoard shows it, purges applied."""
    accumulator = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"))
    accumulator.Reload()
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def _next_second() -> None:
    """Event files are read in name order and named by the second they were opened in."""
    time.sleep(1.1)


def test_purge_step_is_the_step_after_the_checkpoint():
    assert purge_step(None) is None
    assert purge_step(0) == 1
    assert purge_step(5) == 6


def test_resumed_log_hides_the_killed_runs_events_past_the_checkpoint(tmp_path):
    log = MetricsLog(tmp_path)
    for step in range(1, 11):  # the killed run got to step 10; its last checkpoint: step 5
        log.log(step, {"loss": float(step)})
    log.close()
    _next_second()

    log = MetricsLog(tmp_path, resume_step=5)
    for step in (6, 7):
        log.log(step, {"loss": 100.0 + step})
    log.close()

    assert scalars(tmp_path, "train/loss") == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 5.0),
                                               (6, 106.0), (7, 107.0)]


def test_a_log_without_resume_step_purges_nothing(tmp_path):
    log = MetricsLog(tmp_path)
    log.log(3, {"loss": 3.0})
    log.close()
    _next_second()
    log = MetricsLog(tmp_path)
    log.log(4, {"loss": 4.0})
    log.close()
    assert scalars(tmp_path, "train/loss") == [(3, 3.0), (4, 4.0)]


@pytest.mark.slow
def test_pretrain_resume_purges_tensorboard_past_the_checkpoint(tiny_pretraining_data, tmp_path):
    def run(out: Path, resume: bool = False) -> None:
        pretrain(PretrainConfig(data=str(tiny_pretraining_data), out=str(out), preset="tiny",
                                max_steps=4, batch_size=4, eval_every=0, eval_batches=1,
                                log_every=1, save_every=2, keep_checkpoints=0, threads=1,
                                resume=resume))

    full, partial = tmp_path / "full", tmp_path / "partial"
    run(full)
    straight = scalars(full, "train/loss")
    assert [s for s, _ in straight] == [1, 2, 3, 4]
    shutil.copytree(full, partial)  # as if killed after logging step 4, before its checkpoint
    shutil.rmtree(partial / "checkpoints" / "step-00000004")
    _next_second()
    run(partial, resume=True)  # resumes from step 2
    resumed = scalars(partial, "train/loss")
    assert [s for s, _ in resumed] == [1, 2, 3, 4]  # steps 3-4 once, not twice
    assert resumed[:2] == straight[:2]


@pytest.mark.slow
def test_finetune_resume_purges_tensorboard_past_the_checkpoint(tmp_path):
    model = build_tiny_model(tmp_path / "bert")
    files = FIXTURES["nsmc"](tmp_path / "data")

    def run(out: Path, resume: bool = False) -> None:
        values = {"task": "nsmc", "model": str(model), "out": str(out), "max_steps": 6,
                  "eval_every": 3, "log_every": 1, "batch_size": 4, "max_len": 64,
                  "progress": False, "keep_checkpoints": 0, "resume": resume,
                  **{k: str(v) for k, v in files.items()}}
        assert finetune(config.build(FinetuneConfig, values)) == 0

    full, partial = tmp_path / "full", tmp_path / "partial"
    run(full)
    shutil.copytree(full, partial)  # as if killed after logging step 6, before its checkpoint
    shutil.rmtree(partial / "checkpoints" / "step-00000006")
    _next_second()
    run(partial, resume=True)  # resumes from step 3
    assert [s for s, _ in scalars(partial, "train/loss")] == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in scalars(partial, "dev/accuracy")] == [3, 6]
    assert scalars(partial, "train/loss")[:3] == scalars(full, "train/loss")[:3]
