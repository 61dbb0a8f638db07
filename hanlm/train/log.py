"""Run logs: metrics.jsonl (always) and TensorBoard (when enabled), main process only."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class MetricsLog:
    """Appends one JSON object per logged step; mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self._file = None
        self._tb = None
        if not enabled:
            return
        self._file = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard is a dependency; keep logging if a user removed it
                logger.warning("tensorboard is not installed; logging to metrics.jsonl only")

    def log(self, step: int, metrics: dict[str, Any], *, split: str = "train") -> None:
        if not self.enabled:
            return
        record = {"step": step, "split": split, "time": round(time.time(), 3), **metrics}
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float):
                    self._tb.add_scalar(f"{split}/{key}", value, step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


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
