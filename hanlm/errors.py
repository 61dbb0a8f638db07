"""The one exception type users see.

Anything a user can cause (a bad file, a bad flag, a wrong directory) raises `HanlmError` with a
message that names the file, the line or record, and what is wrong. The CLI prints it on one line
and exits with status 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


class HanlmError(Exception):
    """A user-facing error: one line, names the file/record and the problem."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


@dataclass
class Skipped:
    """A bad record left out under ``--on-error skip``: one line of the skipped.jsonl report."""

    path: str
    line: int | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"file": self.path, "line": self.line, "reason": self.reason}


def reject(error: HanlmError, on_error: str, skipped: list[Skipped]) -> None:
    """Raise a bad record's error, or, under ``--on-error skip``, list it and go on."""
    if on_error == "raise":
        raise error
    skipped.append(Skipped(error.path or "?", error.line, str(error)))
    logger.debug("skipped: %s", error)
