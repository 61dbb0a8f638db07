"""What a benchmark runs: per-task settings from the hyper-parameter YAML, and the data found.

Torch-free: reading the plan (and reporting that a task has no data) needs no model.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hanlm.errors import HanlmError

DEFAULT_HPARAMS = Path(__file__).with_name("tasks.yaml")
BUDGETS = ("quick", "standard")
SEED_BASE = 42


@dataclass(frozen=True)
class Settings:
    """How one task is fine-tuned and scored under one budget (the same for every model)."""

    train_limit: int | None
    eval_limit: int | None
    max_len: int
    stride: int | None
    epochs: float
    max_steps: int | None
    batch_size: int
    lr: float
    eval_every: int | None


SETTING_KEYS = tuple(f.name for f in dataclasses.fields(Settings))


@dataclass(frozen=True)
class Data:
    """The files a task runs on. `train` is None when only a dev file was found: it is split
    with `split_dev`, trained on without selection, and its held-out part is the test."""

    test: Path
    train: Path | None
    split_dev: str

    @property
    def official(self) -> bool:
        return self.train is not None

    @property
    def train_file(self) -> Path:
        """The file `finetune` reads (and splits with `split_dev`)."""
        return self.train if self.train is not None else self.test


@dataclass(frozen=True)
class TaskPlan:
    name: str
    settings: Settings
    data: Data | None
    looked_for: tuple[Path, ...]  # every file the layouts name, for the "no data" note
    minimal: tuple[Path, ...]  # the dev files, any one of which would have sufficed

    @property
    def finetune_split(self) -> str | None:
        """The split `finetune` makes of its training file: a dev file's held-out part (the
        test), or a part of an official train file held out for model selection (none when
        eval_every is 0: without selection nothing needs holding out)."""
        if self.data is None:
            return None
        if not self.data.official:
            return self.data.split_dev
        return None if self.settings.eval_every == 0 else self.data.split_dev


@dataclass(frozen=True)
class Plan:
    budget: str
    seeds: tuple[int, ...]
    data_dir: Path
    tasks: tuple[TaskPlan, ...]


def default_data_dir() -> Path:
    return Path(os.environ.get("HANLM_SHARED_DATA") or Path("..") / "shared" / "data")


def read_hparams(path: str | Path | None) -> dict[str, Any]:
    path = Path(path) if path else DEFAULT_HPARAMS
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HanlmError("hyper-parameter file not found", path=str(path)) from None
    except yaml.YAMLError as e:
        raise HanlmError(f"invalid YAML: {e}", path=str(path)) from None
    _check_hparams(tree, path)
    return tree


def _check_hparams(tree: Any, path: Path) -> None:
    def fail(message: str) -> None:
        raise HanlmError(message, path=str(path))

    if not isinstance(tree, dict) or not {"budgets", "tasks", "split_dev"} <= set(tree):
        fail("expected the keys split_dev, budgets and tasks")
    for budget in BUDGETS:
        given = tree["budgets"].get(budget)
        if not isinstance(given, dict):
            fail(f"budgets: '{budget}' is missing")
        missing = set(SETTING_KEYS) - set(given)
        unknown = set(given) - set(SETTING_KEYS) - {"seeds"}
        if missing or unknown or "seeds" not in given:
            fail(f"budgets.{budget}: missing {sorted(missing | ({'seeds'} - set(given)))}, "
                 f"unknown {sorted(unknown)}")
    for name, entry in tree["tasks"].items():
        if not isinstance(entry, dict) or not entry.get("layouts"):
            fail(f"tasks.{name}: a task needs 'layouts'")
        for key in set(entry) - {"layouts", "all", *BUDGETS}:
            fail(f"tasks.{name}: unknown key '{key}'")
        for key in ("all", *BUDGETS):
            unknown = set(entry.get(key) or {}) - set(SETTING_KEYS)
            if unknown:
                fail(f"tasks.{name}.{key}: unknown settings {sorted(unknown)}")
        for layout in entry["layouts"]:
            if set(layout) not in ({"train", "test"}, {"dev"}):
                fail(f"tasks.{name}: a layout is {{train, test}} or {{dev}}, not {layout}")


def task_names(hparams: dict[str, Any]) -> list[str]:
    return list(hparams["tasks"])


def select_tasks(spec: str, hparams: dict[str, Any]) -> list[str]:
    known = task_names(hparams)
    if spec.strip() == "all":
        return known
    chosen = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in known]
    if unknown or not chosen:
        raise HanlmError(f"--tasks {spec!r}: unknown {', '.join(unknown) or 'empty list'}; "
                         f"choose from all, {', '.join(known)}")
    return list(dict.fromkeys(chosen))


def task_settings(hparams: dict[str, Any], task: str, budget: str,
                  caps: dict[str, int | None] | None = None) -> Settings:
    """The budget's settings, the task's `all:` then `<budget>:` overrides, then the caps
    (`limit`, `eval_limit`, `max_steps`), each lowering its setting, never raising it."""
    entry = hparams["tasks"][task]
    values = {k: v for k, v in hparams["budgets"][budget].items() if k != "seeds"}
    values.update(entry.get("all") or {})
    values.update(entry.get(budget) or {})
    for key, cap in (caps or {}).items():
        if cap is not None:
            values[key] = cap if values[key] is None else min(values[key], cap)
    return Settings(**values)


def find_data(hparams: dict[str, Any], task: str, data_dir: Path
              ) -> tuple[Data | None, tuple[Path, ...], tuple[Path, ...]]:
    """(the first layout whose files exist, every file looked for, the dev files)."""
    looked, minimal = [], []
    found = None
    for layout in hparams["tasks"][task]["layouts"]:
        files = {k: data_dir / v for k, v in layout.items()}
        looked += [p for p in files.values() if p not in looked]
        if "dev" in files:
            minimal.append(files["dev"])
        if found is None and all(p.is_file() for p in files.values()):
            found = Data(test=files.get("test", files.get("dev")), train=files.get("train"),
                         split_dev=str(hparams["split_dev"]))
    return found, tuple(looked), tuple(minimal or looked)


def make_plan(*, tasks: str, budget: str, seeds: int | None, data: str | None,
              hparams_path: str | None, caps: dict[str, int | None] | None = None) -> Plan:
    if budget not in BUDGETS:
        raise HanlmError(f"--budget {budget!r}: choose one of {', '.join(BUDGETS)}")
    hparams = read_hparams(hparams_path)
    data_dir = Path(data) if data else default_data_dir()
    if not data_dir.is_dir():
        raise HanlmError("data folder not found (give --data DIR or set $HANLM_SHARED_DATA)",
                         path=str(data_dir))
    n_seeds = seeds if seeds is not None else int(hparams["budgets"][budget]["seeds"])
    plans = []
    for name in select_tasks(tasks, hparams):
        found, looked, minimal = find_data(hparams, name, data_dir)
        plans.append(TaskPlan(name, task_settings(hparams, name, budget, caps), found, looked,
                              minimal))
    return Plan(budget, tuple(SEED_BASE + i for i in range(n_seeds)), data_dir, tuple(plans))
