"""Run logs: metrics.jsonl (always) and TensorBoard (when enabled), main process only."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from hanlm import atomic

logger = logging.getLogger(__name__)


class MetricsLog:
    """Appends one JSON object per logged step; mirrors scalars to TensorBoard.

    A resumed run appends to the log of the run it continues, which a SIGKILL may have left
    ending in a cut line, and which may hold steps past the checkpoint the run resumes from
    (they will be logged again). Opening the log removes a cut last line; the first record this
    process logs for a split removes that split's earlier records from its step on. So the log
    never holds a step twice, and holds no step the final weights did not go through.

    TensorBoard event files are append-only, so there `resume_step` (the step of the checkpoint
    a resumed run continues from) does the same: the writer starts with a purge marker at the
    step after it, and TensorBoard hides every earlier event from that step on (the events of
    the killed run past its checkpoint). Events up to `resume_step` stay: the checkpoint was
    saved after they were logged, and the resumed run does not log them again (except the
    fine-tuning loop's `data` record of an epoch the run resumes at the start of, which then
    shows twice at that step in TensorBoard, once in metrics.jsonl).
    """

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = True,
                 resume_step: int | None = None):
        self.enabled = enabled
        self._file = None
        self._tb = None
        self._splits_seen: set[str] = set()
        if not enabled:
            return
        self._path = Path(run_dir) / "metrics.jsonl"
        self._earlier = _drop_cut_line(self._path)
        self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"),
                                         purge_step=purge_step(resume_step))
            except ImportError:  # tensorboard is a dependency; keep logging if a user removed it
                logger.warning("tensorboard is not installed; logging to metrics.jsonl only")

    def log(self, step: int, metrics: dict[str, Any], *, split: str = "train") -> None:
        if not self.enabled:
            return
        if self._earlier and split not in self._splits_seen:
            self._drop_from(split, step)
        self._splits_seen.add(split)
        record = {"step": step, "split": split, "time": round(time.time(), 3), **metrics}
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float):
                    self._tb.add_scalar(f"{split}/{key}", value, step)

    def _drop_from(self, split: str, step: int) -> None:
        """Remove the earlier records of `split` at `step` or later (a resumed run relogs them)."""
        lines = self._path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not _superseded(line, split, step)]
        if len(kept) == len(lines):
            return
        self._file.close()
        atomic.write_text(self._path, "".join(kept))
        self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
        logger.info(
            "metrics.jsonl: replaced %d %s records from step %d on (resumed run)",
            len(lines) - len(kept),
            split,
            step,
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


def purge_step(resume_step: int | None) -> int | None:
    """The first TensorBoard step a run resumed from `resume_step` logs anew (None: a new run)."""
    return None if resume_step is None else resume_step + 1


def _drop_cut_line(path: Path) -> bool:
    """Truncate `path` after its last complete line; True when complete lines remain."""
    if not path.is_file():
        return False
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        logger.warning("%s: removed a cut last line (the previous run was killed)", path)
        os.truncate(path, end)
    return end > 0


def _superseded(line: str, split: str, step: int) -> bool:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return False
    return record.get("split") == split and record.get("step", -1) >= step


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill mid-write: the rest is intact
            continue
    return rows
