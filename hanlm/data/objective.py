"""Which instances each pretraining objective trains on (the model side is
hanlm/model/objectives.py). Imports no torch: `hanlm data build` and the CLI read it."""

from __future__ import annotations

from typing import Literal

from hanlm.errors import HanlmError

Objective = Literal["bert", "mlm", "electra"]
OBJECTIVES = ("bert", "mlm", "electra")


def data_kind(objective: str) -> str:
    """The instances an objective trains on: NSP pairs or packed sequences."""
    return "pairs" if objective == "bert" else "packed"


def data_objective(meta: dict) -> str:
    """The objective a data directory was built for (data built before the option: `bert`)."""
    return meta.get("settings", {}).get("objective", "bert")


def resolve_objective(requested: str | None, meta: dict, data_dir: str) -> str:
    """`requested`, or the data's objective; refused when the data holds the other kind."""
    built_for = data_objective(meta)
    objective = requested or built_for
    if data_kind(objective) != data_kind(built_for):
        wanted = "NSP pairs" if data_kind(objective) == "pairs" else "packed sequences"
        raise HanlmError(
            f"objective {objective} trains on {wanted}, but this data was built for "
            f"{built_for}; rebuild it with `hanlm data build --objective {objective}`",
            path=data_dir)
    return objective
