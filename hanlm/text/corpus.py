"""INTERFACE STUB — to be implemented (see docstrings). Do not change signatures without
updating hanlm/data/build.py and hanlm/tokenizer.

Corpus formats (``format``; ``auto`` picks by extension, after stripping ``.gz``):
- ``docs``  (.txt): one sentence per line, documents separated by blank lines (BERT's format).
  A ``.txt`` whose first non-blank line starts with ``<doc `` is read as ``wiki``.
- ``lines``: one document per line (use with ``split_sentences``).
- ``wiki``: WikiExtractor ``<doc id=".." url=".." title="..">`` ... ``</doc>`` blocks; one
  paragraph a line; the title line (first line after <doc>, equal to the title) is dropped;
  document id = the ``id`` attribute.
- ``jsonl`` (.jsonl/.json lines): one JSON object a line, text in ``text_column``.
- ``tsv``/``csv``: header row; text in ``text_column``.
For jsonl/tsv/csv: without ``group_column`` each record is one document; with it, records whose
group value is equal form one document (each record one line of it), grouped within windows of
``group_window`` consecutive records so memory stays bounded on unsorted files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from hanlm.config import opt


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
    exclude_ids: list[str] = opt(
        help="files of ids to leave out (one id a line, or a TSV/CSV with an 'id' column)",
        factory=list,
    )


@dataclass
class Document:
    id: str  # record/document id: id column value, wiki id, group value, or "path:line"
    sentences: list[str]  # normalised, non-empty
    source: str  # "path:line" where the document starts (for error messages)


def read_documents(paths: list[str], cfg: CorpusConfig) -> Iterator[Document]:
    raise NotImplementedError


def read_texts(paths: list[str], cfg: CorpusConfig) -> Iterator[str]:
    raise NotImplementedError
