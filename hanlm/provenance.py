"""How a result was produced, for the records that runs write beside their outputs."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def command_line(fallback: str) -> str:
    """The command as a user would type it again (`hanlm VERB …`) when this process was started
    from the command line (the `hanlm` script, `python -m hanlm` or `python -m hanlm.cli`);
    `fallback` when it was not (a call of the Python API)."""
    entry = Path(sys.argv[0])
    if entry.name in ("hanlm", "__main__.py") or entry.parts[-2:] == ("hanlm", "cli.py"):
        return shlex.join(["hanlm", *sys.argv[1:]])
    return fallback
