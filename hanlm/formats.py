"""File extension -> format, for both readers: one table, so a difference between them is
stated here once.

A file is read in one of two roles: as a pretraining ``corpus`` (hanlm.text: ``tokenizer
train``, ``data build``) or as a ``task`` file (hanlm.tasks: ``finetune``, ``evaluate``,
``predict``). Two extensions mean different things in the two roles:

- ``.txt``: a corpus ``.txt`` is plain documents (BERT's format: a sentence a line, a blank
  line between documents); the task ``.txt`` files are NSMC's ``ratings_*.txt``, TSV tables
  with a header (``id document label``). The corpus reader still looks inside a ``.txt``: a
  ``<doc ...>`` first line makes it WikiExtractor output, a tab-separated header naming the text
  column makes it a TSV (NSMC given to ``data build``).
- ``.json``: a corpus ``.json`` is JSON lines (one object a line, as corpus dumps come); a task
  ``.json`` is one JSON document (KLUE's list of records, SQuAD/KorQuAD's ``{"data": [...]}``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Role = Literal["corpus", "task"]

# extension: (format as a corpus, format as a task file)
EXTENSIONS: dict[str, tuple[str, str]] = {
    ".txt": ("docs", "tsv"),
    ".tsv": ("tsv", "tsv"),
    ".csv": ("csv", "csv"),
    ".jsonl": ("jsonl", "jsonl"),
    ".json": ("jsonl", "json"),
}
_COLUMN = {"corpus": 0, "task": 1}


def format_of(path: str | Path, role: Role) -> str | None:
    """The format a file's extension means in ``role`` (None for an extension not in the table).
    A corpus may be gzipped: ``.gz`` is looked through in that role."""
    name = Path(path).name
    if role == "corpus":
        name = name.removesuffix(".gz")
    formats = EXTENSIONS.get(Path(name).suffix.lower())
    return formats[_COLUMN[role]] if formats else None
