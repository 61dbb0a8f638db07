"""Checkpoints that survive kills: model, optimizer, scheduler, RNG states and data position.

Layout, the same for pretraining and fine-tuning: ``RUN/checkpoints/step-00000100/`` holding
``model.safetensors``, ``optimizer.pt`` (the optimizer's state; tensors only, loaded with
``weights_only=True``: no pickle code runs), ``rng.pt`` and ``state.json`` (step, training
seconds so far, the loop's own position under ``loop``, and the sha256 of every other file).
The learning rate is a function of step and seconds (hanlm/train/optim.py: Schedule), so no
scheduler state is stored. Each checkpoint
directory appears atomically; a checkpoint whose hashes do not match is reported and skipped in
favour of the previous good one.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from hanlm import atomic
from hanlm.errors import HanlmError

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^step-(\d{8})$")


@dataclass
class Checkpoint:
    path: Path
    step: int
    state: dict[str, Any]

    def model_state(self) -> dict[str, torch.Tensor]:
        return load_file(self.path / "model.safetensors")

    def optimizer_state(self) -> dict[str, Any] | None:
        path = self.path / "optimizer.pt"
        return torch.load(path, weights_only=True) if path.is_file() else None

    def rng_state(self) -> dict[str, Any]:
        return _load_rng(self.path)

    @property
    def elapsed_seconds(self) -> float:
        return float(self.state.get("elapsed_seconds", 0.0))

    @property
    def loop(self) -> dict[str, Any]:
        return self.state.get("loop", {})

    def restore(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Weights into `module`, the optimizer's state, and the RNG states of this process."""
        module.load_state_dict(self.model_state())
        optimizer.load_state_dict(self.optimizer_state())
        restore_rng(self.rng_state())


def capture_rng() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_rng(path: Path, state: dict[str, Any]) -> None:
    tensors = {"torch": state["torch"]}
    for i, s in enumerate(state.get("cuda", [])):
        tensors[f"cuda.{i}"] = s
    py = state["python"]
    torch.save({"tensors": tensors, "python": [py[0], list(py[1]), py[2]]}, path)


def _load_rng(ckpt: Path) -> dict[str, Any]:
    raw = torch.load(ckpt / "rng.pt", weights_only=True)
    tensors = raw["tensors"]
    py = raw["python"]
    state: dict[str, Any] = {"torch": tensors["torch"], "python": (py[0], tuple(py[1]), py[2])}
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda:
        state["cuda"] = cuda
    return state


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any] | None,
    state: dict[str, Any],
    keep: int = 3,
) -> Path:
    """Write checkpoint `step` atomically and keep only the newest `keep` (0 = all)."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    with atomic.directory(final) as tmp:
        # safetensors refuses shared storage (BERT ties the MLM decoder to the embeddings):
        # store a copy of each tensor.
        save_file(
            {k: v.detach().cpu().clone().contiguous() for k, v in model_state.items()},
            tmp / "model.safetensors",
        )
        if optimizer_state is not None:
            torch.save(optimizer_state, tmp / "optimizer.pt")
        _save_rng(tmp / "rng.pt", capture_rng())
        hashes = {p.name: atomic.file_sha256(p) for p in sorted(tmp.iterdir())}
        (tmp / "state.json").write_text(
            json.dumps({**state, "step": step, "sha256": hashes}, indent=2, ensure_ascii=False),
            encoding="utf-8",
        )
    _prune(root, keep)
    return final


def save_training_checkpoint(run_dir: Path, step: int, *, module: torch.nn.Module,
                             optimizer: torch.optim.Optimizer, elapsed: float, precision: str,
                             loop: dict[str, Any], keep: int,
                             extra: dict[str, Any] | None = None) -> Path:
    """A resumable checkpoint of a training loop at optimizer step `step` (main process);
    `precision` is what the run trains in, which a resume keeps (`saved_precision`)."""
    return save_checkpoint(
        run_dir, step, model_state=module.state_dict(), optimizer_state=optimizer.state_dict(),
        state={"elapsed_seconds": elapsed, "precision": precision, "loop": loop, **(extra or {})},
        keep=keep)


def _prune(root: Path, keep: int) -> None:
    mine = f".tmp-{os.getpid()}"
    for stale in root.glob(".step-*.tmp-*"):  # left by a killed run
        if not stale.name.endswith(mine):
            shutil.rmtree(stale, ignore_errors=True)
    if keep <= 0:
        return
    steps = sorted(p for p in root.iterdir() if CHECKPOINT_RE.match(p.name))
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _read_state(path: Path) -> dict[str, Any]:
    return json.loads((path / "state.json").read_text(encoding="utf-8"))


def verify(path: Path) -> Checkpoint:
    """Open checkpoint `path`, checking every file against its recorded hash."""
    try:
        state = _read_state(path)
    except (OSError, json.JSONDecodeError) as e:
        raise HanlmError(f"checkpoint is incomplete or corrupted ({e})", path=str(path)) from None
    for name, digest in state.get("sha256", {}).items():
        file = path / name
        if not file.is_file() or atomic.file_sha256(file) != digest:
            raise HanlmError(f"checkpoint file {name} is missing or corrupted", path=str(path))
    return Checkpoint(path=path, step=int(state["step"]), state=state)


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if CHECKPOINT_RE.match(p.name))


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The newest checkpoint that verifies; corrupted ones are reported and skipped."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return verify(path)
        except HanlmError as e:
            logger.warning("skipping %s", e)
    return None


def saved_precision(run_dir: Path) -> str | None:
    """The precision the run in `run_dir` last trained in, from its newest checkpoint that
    records one (None when it has none yet; an explicit --precision on a resume can change it
    between checkpoints). Read before the model is set up, so without checking the weights'
    hashes."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            precision = _read_state(path).get("precision")
        except (OSError, json.JSONDecodeError):
            continue
        if precision is not None:
            return str(precision)
    return None


def resolve_checkpoint(path: str | Path) -> Checkpoint:
    """A run directory (its latest good checkpoint) or one checkpoint directory."""
    path = Path(path)
    if (path / "state.json").is_file():
        return verify(path)
    ckpt = latest_checkpoint(path)
    if ckpt is None:
        raise HanlmError("no usable checkpoint found", path=str(path))
    return ckpt
