"""The one exception type users see.

Anything a user can cause (a bad file, a bad flag, a wrong directory) raises `HanlmError` with a
message that names the file, the line or record, and what is wrong. The CLI prints it on one line
and exits with status 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class HanlmError(Exception):
    """A user-facing error: one line, names the file/record and the problem."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
