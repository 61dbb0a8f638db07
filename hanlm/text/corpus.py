"""Streaming corpus readers: every format hanlm accepts, one document at a time.

Corpus formats (``format``; ``auto`` picks by extension, after stripping ``.gz``, from the
table in :mod:`hanlm.formats` that the task readers share):
- ``docs``  (.txt): one sentence per line, documents separated by blank lines (BERT's format).
  A ``.txt`` whose first non-blank line starts with ``<doc `` is read as ``wiki``; one whose
  first line is a tab-separated header naming ``text_column`` (NSMC's ``ratings_*.txt`` with
  ``--text-column document``) is read as ``tsv``.
- ``lines``: one document per line (use with ``split_sentences``).
- ``wiki``: WikiExtractor ``<doc id=".." url=".." title="..">`` ... ``</doc>`` blocks; one
  paragraph a line; the title line (first line after <doc>, equal to the title) is dropped;
  document id = the ``id`` attribute.
- ``jsonl`` (.jsonl/.json lines): one JSON object a line, text in ``text_column``.
- ``tsv``/``csv``: header row; text in ``text_column``. TSV is read without quote handling
  (``csv.QUOTE_NONE``): NSMC-style files are not quoted, and 736 raw NSMC reviews start with
  ``"``, which a quoting reader would join with the following lines.
For jsonl/tsv/csv: without ``group_column`` each record is one document; with it, records whose
group value is equal form one document (each record one line of it), grouped within windows of
``group_window`` consecutive records so memory stays bounded on unsorted files (a group split
by a window boundary becomes two documents with the same id).

Files are decoded one line at a time, so an encoding error names its line; ``.gz`` files are
decompressed on the fly. Every text goes through :func:`hanlm.text.normalize.normalize`.

A bad record (an undecodable line, malformed JSON, a row with the wrong number of fields, wiki
text outside a ``<doc>`` block...) raises HanlmError; with ``on_error="skip"`` it is left out
and listed in ``CorpusStats.skipped`` instead, which :func:`hanlm.atomic.write_skipped` turns into the
``skipped.jsonl`` report. Errors about a whole file (missing, unreadable, no such column in the
header, no text at all) are raised either way.

This module picks the format, reads the docs and lines formats, and hands the others to
:mod:`hanlm.text.tables` (JSONL, TSV, CSV) and :mod:`hanlm.text.wiki` (WikiExtractor); files are
opened and decoded by :mod:`hanlm.text.lines`, records become documents in
:mod:`hanlm.text.grouping` (exclusion by id, grouping, sentence splitting), and the types they
share are in :mod:`hanlm.text.records`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from hanlm.errors import HanlmError, Skipped
from hanlm.formats import format_of
from hanlm.text.grouping import (
    drop_excluded_documents,
    load_ids,
    records_to_documents,
    split_in_batches,
)
from hanlm.text.lines import (
    batched,
    check_encoding,
    decoded_lines,
    normalized_lines,
    open_binary,
    peek,
)
from hanlm.text.records import (
    SKIPPED_FILE,
    CorpusConfig,
    CorpusStats,
    Document,
    RawDocument,
    place_id,
    reject_record,
)
from hanlm.text.tables import read_jsonl, read_table
from hanlm.text.wiki import read_wiki

logger = logging.getLogger(__name__)

__all__ = ["SKIPPED_FILE", "CorpusConfig", "CorpusStats", "Document", "batched", "load_ids",
           "read_documents", "read_texts"]


_TABULAR = ("jsonl", "tsv", "csv")


# ---------------------------------------------------------------- public readers


def read_documents(
    paths: list[str], cfg: CorpusConfig, stats: CorpusStats | None = None
) -> Iterator[Document]:
    """Stream the documents of ``paths`` in order; raise HanlmError on bad input.

    A file that yields no document at all (empty, blank lines only, everything excluded) is an
    error: it is almost always a wrong path, format or column.
    """
    stats = stats if stats is not None else CorpusStats()
    paths = [str(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    if not paths:
        raise HanlmError("no corpus files given")
    check_encoding(cfg.encoding)
    for path in paths:
        open_binary(path).close()  # fail on a missing file before reading the others
    exclude = load_ids(cfg.exclude_ids)
    for path in paths:
        yield from _read_file(path, cfg, exclude, stats)
    logger.info("%s", stats.describe())
    if exclude and stats.excluded == 0:
        logger.warning(
            "none of the %s ids in --exclude-ids occurred in the corpus: check --id-column",
            f"{len(exclude):,}",
        )


def read_texts(
    paths: list[str], cfg: CorpusConfig, stats: CorpusStats | None = None
) -> Iterator[str]:
    """Every normalised sentence (or line) of the corpus, for tokenizer training."""
    for doc in read_documents(paths, cfg, stats):
        yield from doc.sentences


# ---------------------------------------------------------------- per file


def _read_file(
    path: str, cfg: CorpusConfig, exclude: set[str], stats: CorpusStats
) -> Iterator[Document]:
    stats.files += 1
    documents_before, excluded_before = stats.documents, stats.excluded
    skipped_before = len(stats.skipped)
    fmt, lines = _format_and_lines(path, cfg, stats)
    if exclude:
        _check_ids_available(fmt, cfg, path)
    docs = _raw_documents(fmt, path, lines, cfg, exclude, stats)
    if fmt == "wiki" or (cfg.group_column and not cfg.id_column):
        # Ids name documents (wiki ids, or groups when there are no record ids). With
        # --id-column they name records only: a group value (e.g. a movie id) is another
        # namespace, and matching it would drop whole movies whose id equals a review id.
        docs = drop_excluded_documents(docs, exclude, stats)
    if cfg.split_sentences:
        docs = split_in_batches(docs)
    for doc in docs:
        if doc.texts:
            stats.documents += 1
            stats.sentences += len(doc.texts)
            yield Document(id=doc.id, sentences=doc.texts, source=doc.source)
    if stats.documents == documents_before:
        skipped = stats.skipped[skipped_before:]
        raise HanlmError(_nothing_found(path, fmt, cfg, stats.excluded - excluded_before, skipped))


def _format_and_lines(
    path: str, cfg: CorpusConfig, stats: CorpusStats
) -> tuple[str, Iterator[tuple[int, str]]]:
    lines = decoded_lines(path, cfg.encoding, reject=lambda e: reject_record(e, cfg, stats))
    if cfg.format != "auto":
        return cfg.format, lines
    fmt = format_of(path, "corpus")
    if fmt is None:
        raise HanlmError(
            f"cannot tell the corpus format from the name {Path(path.removesuffix('.gz')).name!r}; "
            "pass --format (docs, lines, wiki, jsonl, tsv or csv)",
            path=path,
        )
    if fmt != "docs":
        return fmt, lines
    first, lines = peek(lines)
    if first.startswith("<doc ") or first == "<doc>":
        return "wiki", lines
    if "\t" in first and cfg.text_column in [c.strip() for c in first.split("\t")]:
        return "tsv", lines
    return "docs", lines


def _check_ids_available(fmt: str, cfg: CorpusConfig, path: str) -> None:
    """Refuse an exclusion that could not match anything: silent leakage is the worst outcome."""
    if fmt in ("docs", "lines"):
        raise HanlmError(
            f"--exclude-ids needs record ids, and the {fmt} format has none "
            "(use jsonl/tsv/csv with --id-column, or wiki)",
            path=path,
        )
    if fmt in _TABULAR and cfg.id_column is None and cfg.group_column is None:
        raise HanlmError(
            f"--exclude-ids needs --id-column to know which {fmt} column holds the ids", path=path
        )


def _nothing_found(
    path: str, fmt: str, cfg: CorpusConfig, excluded: int, skipped: list[Skipped]
) -> str:
    how = f"read as {fmt}" + (f", text column {cfg.text_column!r}" if fmt in _TABULAR else "")
    why = f"; {excluded:,} records/documents were excluded by --exclude-ids" if excluded else ""
    if skipped:
        why += f"; {len(skipped):,} bad records were skipped, the first: {skipped[0].reason}"
    return f"no text found in {path} ({how}){why}"


def _raw_documents(
    fmt: str,
    path: str,
    lines: Iterator[tuple[int, str]],
    cfg: CorpusConfig,
    exclude: set[str],
    stats: CorpusStats,
) -> Iterator[RawDocument]:
    if fmt == "docs":
        return _read_docs(path, lines, stats)
    if fmt == "lines":
        return _read_lines(path, lines, stats)
    if fmt == "wiki":
        return read_wiki(path, lines, cfg, stats)
    records = (
        read_jsonl(path, lines, cfg, stats)
        if fmt == "jsonl"
        else read_table(path, lines, cfg, fmt, stats)
    )
    return records_to_documents(records, cfg, exclude, stats)


# ---------------------------------------------------------------- line formats


def _read_docs(
    path: str, lines: Iterable[tuple[int, str]], stats: CorpusStats
) -> Iterator[RawDocument]:
    doc: RawDocument | None = None
    for lineno, text in normalized_lines(lines, stats):
        if not text:
            if doc is not None:
                yield doc
            doc = None
            continue
        stats.records += 1
        if doc is None:
            doc = RawDocument(id=place_id(path, lineno), source=f"{path}:{lineno}", texts=[])
        doc.texts.append(text)
    if doc is not None:
        yield doc


def _read_lines(
    path: str, lines: Iterable[tuple[int, str]], stats: CorpusStats
) -> Iterator[RawDocument]:
    for lineno, text in normalized_lines(lines, stats):
        if text:
            stats.records += 1
            yield RawDocument(id=place_id(path, lineno), source=f"{path}:{lineno}", texts=[text])
