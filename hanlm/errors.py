"""The one exception type users see.

Anything a user can cause (a bad file, a bad flag, a wrong directory) raises `HanlmError` with a
message that names the file, the line or record, and what is wrong. The CLI prints it on one line
and exits with status 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

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


def write_skipped(skipped: list[Skipped], path: str | Path) -> None:
    """Write the skipped records as JSONL (file, line, reason), atomically, and say so once.

    With nothing skipped, a report an earlier run left at ``path`` is removed, so the file
    always describes the output beside it.
    """
    from hanlm import atomic

    path = Path(path)
    if not skipped:
        path.unlink(missing_ok=True)
        return
    atomic.write_jsonl(path, (s.as_dict() for s in skipped))
    logger.warning("skipped %s bad records (--on-error skip); listed in %s",
                   f"{len(skipped):,}", path)
