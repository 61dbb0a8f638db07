"""What the corpus readers pass between them: the reader settings (`CorpusConfig`), the
`Document` they yield, the `CorpusStats` they count into, and the `Record` (one row of a
table or JSONL file) and `RawDocument` (a document before sentence splitting) in between."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hanlm.config import opt
from hanlm.errors import HanlmError, Skipped, reject
from hanlm.text.normalize import NormalizeStats

SKIPPED_FILE = "skipped.jsonl"  # the report written under --on-error skip (as hanlm/tasks)


@dataclass
class CorpusConfig:
    format: Literal["auto", "docs", "lines", "wiki", "jsonl", "tsv", "csv"] = opt(
        "auto", "corpus format; auto = by file extension"
    )
    text_column: str = opt("text", "JSONL field / TSV-CSV column holding the text")
    group_column: str | None = opt(None, "column whose equal values join records into one document")
    id_column: str | None = opt(None, "column/field holding a record id (for --exclude-ids)")
    group_window: int = opt(200_000, "records grouped together at most (bounds memory)", min=1)
    encoding: str = opt("utf-8", "text encoding of the corpus files (e.g. cp949)")
    split_sentences: bool = opt(False, "split each text into sentences with a Korean splitter")
    on_error: Literal["raise", "skip"] = opt(
        "raise", "a bad record stops the run (raise) or is skipped, counted and listed (skip)"
    )
    exclude_ids: list[str] = opt(
        help="files of ids to leave out (one id a line, or a TSV/CSV with an 'id' column)",
        factory=list,
    )


@dataclass
class Document:
    id: str  # record/document id: id column value, wiki id, group value, or "file name:line"
    sentences: list[str]  # normalised, non-empty
    source: str  # "path:line" where the document starts (for error messages)


@dataclass
class CorpusStats:
    """What a read saw; pass one to the readers to log or check it afterwards."""

    files: int = 0
    records: int = 0  # lines / records / paragraphs that held text
    empty: int = 0  # records whose text was empty after normalisation (not data loss)
    excluded_records: int = 0  # records whose id was in --exclude-ids
    excluded_documents: int = 0  # documents (wiki articles, groups) whose id was excluded
    documents: int = 0
    sentences: int = 0
    normalize: NormalizeStats = field(default_factory=NormalizeStats)
    skipped: list[Skipped] = field(default_factory=list)  # bad records, under --on-error skip

    @property
    def excluded(self) -> int:
        return self.excluded_records + self.excluded_documents

    def describe(self) -> str:
        return (
            f"read {self.files} file(s): {self.documents:,} documents, {self.sentences:,} "
            f"sentences from {self.records:,} records; excluded {self.excluded_records:,} "
            f"records and {self.excluded_documents:,} documents by id; "
            f"{self.empty:,} empty records; {self.normalize.describe()}"
            + (f"; skipped {len(self.skipped):,} bad records" if self.skipped else "")
        )


@dataclass
class Record:
    text: str
    id: str | None
    group: str | None
    path: str
    line: int  # the record's last line (a quoted field may span several)

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class RawDocument:
    id: str
    source: str
    texts: list[str]  # normalised, non-empty; sentences once split


def place_id(path: str, line: int) -> str:
    """The id of a document that has none of its own: its file's name and line. Not the path as
    given: the id decides the held-out split (hanlm.data.build), which must not change with the
    folder a corpus is read from or with how its path was spelt (``corpus.txt``, ``./corpus.txt``,
    an absolute path)."""
    return f"{Path(path).name}:{line}"


def reject_record(error: HanlmError, cfg: CorpusConfig, stats: CorpusStats) -> None:
    """Raise a bad record's error, or, under ``--on-error skip``, list it and go on."""
    reject(error, cfg.on_error, stats.skipped)
