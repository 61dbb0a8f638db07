"""Streaming corpus readers: every format hanlm accepts, one document at a time.

Corpus formats (``format``; ``auto`` picks by extension, after stripping ``.gz``):
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
and listed in ``CorpusStats.skipped`` instead, which :func:`hanlm.errors.write_skipped` turns into the
``skipped.jsonl`` report. Errors about a whole file (missing, unreadable, no such column in the
header, no text at all) are raised either way.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import gzip
import html
import itertools
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from hanlm.config import opt
from hanlm.errors import HanlmError, Skipped, reject
from hanlm.text.normalize import NormalizeStats, normalize, normalize_many
from hanlm.text.sentences import split_sentences

logger = logging.getLogger(__name__)

_EXTENSIONS = {".txt": "docs", ".jsonl": "jsonl", ".json": "jsonl", ".tsv": "tsv", ".csv": "csv"}
_TABULAR = ("jsonl", "tsv", "csv")
_SPLIT_BATCH = 1024  # texts per kiwi call: large enough for kiwi's threads, small in memory
_ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')
_FIELD_LIMIT = 2**31 - 1  # the largest the csv module accepts on every platform
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
class _Record:
    text: str
    id: str | None
    group: str | None
    path: str
    line: int  # the record's last line (a quoted field may span several)

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class _RawDocument:
    id: str
    source: str
    texts: list[str]  # normalised, non-empty; sentences once split


def _place_id(path: str, line: int) -> str:
    """The id of a document that has none of its own: its file's name and line. Not the path as
    given: the id decides the held-out split (hanlm.data.build), which must not change with the
    folder a corpus is read from or with how its path was spelt (``corpus.txt``, ``./corpus.txt``,
    an absolute path)."""
    return f"{Path(path).name}:{line}"


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
    _check_encoding(cfg.encoding)
    for path in paths:
        _open_binary(path).close()  # fail on a missing file before reading the others
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


def load_ids(paths: list[str]) -> set[str]:
    """Ids from files holding one id a line, or a TSV/CSV whose header has an ``id`` column."""
    ids: set[str] = set()
    for path in paths:
        found = set(_ids_in_file(str(path)))
        if not found:
            raise HanlmError("no ids found in the --exclude-ids file", path=str(path))
        logger.info("excluding %s ids listed in %s", f"{len(found):,}", path)
        ids |= found
    return ids


# ---------------------------------------------------------------- files and lines


def _reject(error: HanlmError, cfg: CorpusConfig, stats: CorpusStats) -> None:
    """Raise a bad record's error, or, under ``--on-error skip``, list it and go on."""
    reject(error, cfg.on_error, stats.skipped)


def _check_encoding(encoding: str) -> None:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise HanlmError(f"unknown encoding {encoding!r} (e.g. utf-8, cp949)") from None
    if name.startswith(("utf-16", "utf-32")):
        raise HanlmError(f"{encoding} files are not supported: convert the corpus to UTF-8")


def _open_binary(path: str) -> IO[bytes]:
    p = Path(path)
    if not p.exists():
        raise HanlmError("file not found", path=path)
    if p.is_dir():
        raise HanlmError("is a directory, expected a corpus file", path=path)
    try:
        return gzip.open(p, "rb") if p.name.endswith(".gz") else p.open("rb")
    except OSError as e:
        raise HanlmError(f"cannot open: {e.strerror or e}", path=path) from None


def _lines(
    path: str,
    encoding: str,
    errors: str = "strict",
    reject: Callable[[HanlmError], None] | None = None,
) -> Iterator[tuple[int, str]]:
    """(line number, line with its line break), decoded a block of whole lines at a time.

    A block that does not decode is decoded again line by line, so an encoding error still
    names the line it is on, and ``reject`` (which raises, or lists the line as skipped) can go
    on with the next line. (Decoding each line on its own, as every block once was, cost more
    CPU than the tokenizer spends on the same text.)
    """
    lineno = 0
    with _open_binary(path) as f:
        try:
            for block in _line_blocks(f):
                try:
                    lines = block.decode(encoding, errors).split("\n")
                except UnicodeDecodeError:
                    lines = None
                if lines is not None:
                    last = lines.pop()  # "" after the block's final line break
                    lines = [line + "\n" for line in lines] + ([last] if last else [])
                    if lineno == 0:
                        lines[0] = lines[0].removeprefix("\ufeff")
                    for line in lines:
                        lineno += 1
                        yield lineno, line
                    continue
                for raw in _split_keeping_breaks(block):
                    lineno += 1
                    try:
                        line = raw.decode(encoding, errors)
                    except UnicodeDecodeError as e:
                        error = HanlmError(_decode_error(e, encoding, lineno), path=path, line=lineno)
                        if reject is None:
                            raise error from None
                        reject(error)
                        continue
                    yield lineno, line.removeprefix("\ufeff") if lineno == 1 else line
        except (OSError, EOFError) as e:  # corrupt or truncated gzip
            raise HanlmError(f"cannot read after line {lineno}: {e}", path=path) from None


_BLOCK_BYTES = 1 << 20


def _line_blocks(f: IO[bytes]) -> Iterator[bytes]:
    """The file in blocks of about ``_BLOCK_BYTES`` that end at a line break (or at its end)."""
    rest = b""
    while data := f.read(_BLOCK_BYTES):
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest += data
            continue
        yield rest + data[:cut]
        rest = data[cut:]
    if rest:
        yield rest


def _split_keeping_breaks(block: bytes) -> list[bytes]:
    """A block's lines as iterating over a binary file gives them: split at b"\\n" only."""
    lines = [line + b"\n" for line in block.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def _decode_error(e: UnicodeDecodeError, encoding: str, lineno: int) -> str:
    what = f"not valid {encoding} at line {lineno} (byte 0x{e.object[e.start]:02x} at offset {e.start})"
    if codecs.lookup(encoding).name == "utf-8":
        return what + "; if it is CP949/EUC-KR pass --encoding cp949"
    return what + "; check --encoding"


def _peek(lines: Iterator[tuple[int, str]]) -> tuple[str, Iterator[tuple[int, str]]]:
    """The first non-blank line (stripped), and an iterator that still yields every line."""
    head = []
    for item in lines:
        head.append(item)
        if item[1].strip():
            return item[1].strip(), itertools.chain(head, lines)
    return "", iter(head)


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
        docs = _drop_excluded_documents(docs, exclude, stats)
    if cfg.split_sentences:
        docs = _split_in_batches(docs)
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
    lines = _lines(path, cfg.encoding, reject=lambda e: _reject(e, cfg, stats))
    if cfg.format != "auto":
        return cfg.format, lines
    name = path.removesuffix(".gz")
    fmt = _EXTENSIONS.get(Path(name).suffix.lower())
    if fmt is None:
        raise HanlmError(
            f"cannot tell the corpus format from the name {Path(name).name!r}; "
            "pass --format (docs, lines, wiki, jsonl, tsv or csv)",
            path=path,
        )
    if fmt != "docs":
        return fmt, lines
    first, lines = _peek(lines)
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
) -> Iterator[_RawDocument]:
    if fmt == "docs":
        return _read_docs(path, lines, stats)
    if fmt == "lines":
        return _read_lines(path, lines, stats)
    if fmt == "wiki":
        return _read_wiki(path, lines, cfg, stats)
    records = (
        _read_jsonl(path, lines, cfg, stats)
        if fmt == "jsonl"
        else _read_table(path, lines, cfg, fmt, stats)
    )
    return _records_to_documents(records, cfg, exclude, stats)


# ---------------------------------------------------------------- line formats


def _read_docs(
    path: str, lines: Iterable[tuple[int, str]], stats: CorpusStats
) -> Iterator[_RawDocument]:
    doc: _RawDocument | None = None
    for lineno, text in _normalized_lines(lines, stats):
        if not text:
            if doc is not None:
                yield doc
            doc = None
            continue
        stats.records += 1
        if doc is None:
            doc = _RawDocument(id=_place_id(path, lineno), source=f"{path}:{lineno}", texts=[])
        doc.texts.append(text)
    if doc is not None:
        yield doc


def _read_lines(
    path: str, lines: Iterable[tuple[int, str]], stats: CorpusStats
) -> Iterator[_RawDocument]:
    for lineno, text in _normalized_lines(lines, stats):
        if text:
            stats.records += 1
            yield _RawDocument(id=_place_id(path, lineno), source=f"{path}:{lineno}", texts=[text])


_BATCH = 1024  # lines or records normalised together


def batched(items: Iterable, size: int = _BATCH) -> Iterator[list]:
    """Lists of up to ``size`` items; when reading stops at a bad line (HanlmError), the items
    before it are still passed on first, so the work done on them is not lost."""
    batch: list = []
    try:
        for item in items:
            batch.append(item)
            if len(batch) == size:
                yield batch
                batch = []
    except HanlmError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def _normalized_lines(
    lines: Iterable[tuple[int, str]], stats: CorpusStats
) -> Iterator[tuple[int, str]]:
    for batch in batched(lines):
        texts = normalize_many([line for _, line in batch], stats.normalize)
        yield from zip((lineno for lineno, _ in batch), texts, strict=True)


def _read_wiki(
    path: str, lines: Iterable[tuple[int, str]], cfg: CorpusConfig, stats: CorpusStats
) -> Iterator[_RawDocument]:
    """WikiExtractor blocks; under --on-error skip, a ``<doc>`` never closed before the next
    one is skipped whole, and stray ``</doc>`` tags and text outside a block line by line."""
    doc: _RawDocument | None = None
    title: str | None = None  # still to be dropped if it is the first line
    for lineno, line in lines:
        tag = line.strip()
        if tag.startswith("<doc ") or tag == "<doc>":
            if doc is not None:
                error = HanlmError(
                    f"<doc> opened before the one at {doc.source} was closed",
                    path=path,
                    line=lineno,
                )
                _reject(error, cfg, stats)
                stats.records -= len(doc.texts)
            attributes = dict(_ATTRIBUTE.findall(tag))
            doc = _RawDocument(
                id=attributes.get("id") or _place_id(path, lineno), source=f"{path}:{lineno}",
                texts=[],
            )
            title = normalize(html.unescape(attributes.get("title", "")))
            continue
        if tag == "</doc>":
            if doc is None:
                error = HanlmError("</doc> without an opening <doc ...>", path=path, line=lineno)
                _reject(error, cfg, stats)
                continue
            yield doc
            doc = None
            continue
        text = normalize(line, stats.normalize)
        if not text:
            continue
        if doc is None:
            error = HanlmError(
                "text outside a <doc ...> block: not WikiExtractor output? (pass --format docs)",
                path=path,
                line=lineno,
            )
            _reject(error, cfg, stats)
            continue
        if title is not None and text == title:
            title = None
            continue
        title = None
        stats.records += 1
        doc.texts.append(text)
    if doc is not None:
        logger.warning("%s: <doc> at %s is never closed (truncated file?); kept", path, doc.source)
        yield doc


# ---------------------------------------------------------------- record formats


def _read_jsonl(
    path: str, lines: Iterable[tuple[int, str]], cfg: CorpusConfig, stats: CorpusStats
) -> Iterator[_Record]:
    for lineno, line in lines:
        if not line.strip():
            continue
        try:
            record = _json_record(path, lineno, line, cfg, stats)
        except HanlmError as e:
            _reject(e, cfg, stats)
            continue
        yield record


def _json_record(
    path: str, lineno: int, line: str, cfg: CorpusConfig, stats: CorpusStats
) -> _Record:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise HanlmError(
            f"malformed JSON at line {lineno}, column {e.colno}: {e.msg} "
            "(jsonl holds one JSON object a line)",
            path=path,
            line=lineno,
        ) from None
    if not isinstance(obj, dict):
        raise HanlmError(
            f"expected a JSON object, got a {type(obj).__name__}", path=path, line=lineno
        )
    text = _json_field(obj, cfg.text_column, "--text-column", path, lineno)
    record_id = (
        _json_field(obj, cfg.id_column, "--id-column", path, lineno) if cfg.id_column else None
    )
    group = (
        _json_field(obj, cfg.group_column, "--group-column", path, lineno)
        if cfg.group_column
        else None
    )
    return _Record(
        text=normalize(text, stats.normalize),
        id=record_id.strip() if record_id is not None else None,
        group=group,
        path=path,
        line=lineno,
    )


def _json_field(obj: dict, key: str, flag: str, path: str, lineno: int) -> str:
    if key not in obj:
        raise _missing_column(key, list(obj), flag, path, lineno)
    return _as_text(obj[key], key, path, lineno)


def _as_text(value: object, key: str, path: str, lineno: int) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, int | float | bool):
        return str(value)
    raise HanlmError(
        f"field {key!r} holds a {type(value).__name__}, expected a string", path=path, line=lineno
    )


def _read_table(
    path: str, lines: Iterator[tuple[int, str]], cfg: CorpusConfig, fmt: str, stats: CorpusStats
) -> Iterator[_Record]:
    rows = _tsv_rows(path, lines) if fmt == "tsv" else _csv_rows(path, lines)
    header: list[str] = []
    for batch in batched(rows):
        kept: list[tuple[int, list[str]]] = []
        stop: HanlmError | None = None  # raised once the rows before it are passed on
        for first, last, row in batch:
            if not isinstance(row, HanlmError) and not header:
                header = [c.strip() for c in row]
                if header:
                    text_at, id_at, group_at = _column_indices(header, cfg, path, last)
                continue
            if isinstance(row, list) and not row:
                continue
            if isinstance(row, list) and len(row) != len(header):
                hint = " (a tab inside a text?)" if fmt == "tsv" else ""
                row = HanlmError(
                    f"{len(row)} fields but the header has {len(header)}{hint}"
                    f"{_line_span(first, last)}",
                    path=path,
                    line=first,
                )
            if isinstance(row, HanlmError):
                if not header or cfg.on_error == "raise":
                    stop = row
                    break
                _reject(row, cfg, stats)
                continue
            kept.append((last, row))
        texts = normalize_many([row[text_at] for _, row in kept], stats.normalize)
        for (last, row), text in zip(kept, texts, strict=True):
            yield _Record(
                text=text,
                id=row[id_at].strip() if id_at is not None else None,
                group=row[group_at] if group_at is not None else None,
                path=path,
                line=last,
            )
        if stop is not None:
            raise stop


_Row = tuple[int, int, "list[str] | HanlmError"]  # first line, last line, fields or the error


def _tsv_rows(path: str, lines: Iterable[tuple[int, str]]) -> Iterator[_Row]:
    """Tab-separated rows without quoting, one a line, as ``csv.reader(delimiter="\\t",
    quoting=csv.QUOTE_NONE)`` reads them; plain lines are split in Python (the csv module
    behind a line-tracking feed cost several times more), a line with a carriage return inside
    goes to the csv module for its exact rule (an error)."""
    for lineno, line in lines:
        body = line.rstrip("\r\n")
        if "\r" in body or "\n" in body:
            yield from _csv_rows(path, [(lineno, line)], "tsv")
        else:
            yield lineno, lineno, body.split("\t") if body else []


def _csv_rows(path: str, lines: Iterable[tuple[int, str]], fmt: str = "csv") -> Iterator[_Row]:
    # A text of any length is one field: the csv module's default limit (128 KiB) would turn
    # a long review or article into an error.
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    feed = _Feed(lines)
    if fmt == "tsv":
        reader = csv.reader(feed, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(feed, strict=True)  # an unterminated quote is an error, not a merged row
    while True:
        try:
            row = _next_row(reader, feed, fmt, path)
        except HanlmError as e:  # the csv module goes on with the next line after an error
            yield feed.first, feed.last, e
            continue
        if row is None:
            return
        yield feed.first, feed.last, row


class _Feed:
    """Lines for the csv reader, remembering the file lines of the record being read.

    The csv module's own count (``line_num``) misses undecodable lines skipped before it saw
    them, and a quoted field can span lines: ``first``/``last`` are the file's numbers.
    """

    def __init__(self, lines: Iterable[tuple[int, str]]):
        self._lines = lines
        self.first = self.last = 0
        self._new_record = True

    def __iter__(self) -> Iterator[str]:
        for lineno, line in self._lines:
            if self._new_record:
                self.first, self._new_record = lineno, False
            self.last = lineno
            yield line

    def next_record(self) -> None:
        self._new_record = True

    def span(self) -> str:
        return _line_span(self.first, self.last)


def _line_span(first: int, last: int) -> str:
    """The lines of a record that spans several, as ' (lines 3-4)'; '' for a single line."""
    return f" (lines {first}-{last})" if last > first else ""


def _next_row(reader, feed: _Feed, fmt: str, path: str) -> list[str] | None:
    """The next row, None at the end; a csv.Error names the lines of the bad record."""
    feed.next_record()
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as e:
        raise HanlmError(f"malformed {fmt}: {e}{feed.span()}", path=path, line=feed.first) from None


def _column_indices(
    header: list[str], cfg: CorpusConfig, path: str, line: int
) -> tuple[int, int | None, int | None]:
    def index(name: str | None, flag: str) -> int | None:
        if name is None:
            return None
        if name not in header:
            raise _missing_column(name, header, flag, path, line)
        return header.index(name)

    text_at = index(cfg.text_column, "--text-column")
    assert text_at is not None
    return text_at, index(cfg.id_column, "--id-column"), index(cfg.group_column, "--group-column")


# Columns that hold the text in common Korean datasets (NSMC: document; NSMC raw: review).
_TEXT_COLUMNS = ("text", "document", "review", "sentence", "content", "body", "comment")


def _missing_column(name: str, present: list[str], flag: str, path: str, line: int) -> HanlmError:
    known = [c for c in present if c.lower() in _TEXT_COLUMNS] if flag == "--text-column" else []
    close = known or difflib.get_close_matches(name, present, n=1, cutoff=0.3)
    hint = f"; did you mean {flag} {close[0]}?" if close else f"; pass {flag}"
    return HanlmError(
        f"no column {name!r} (columns: {', '.join(present)}){hint}", path=path, line=line
    )


def _records_to_documents(
    records: Iterable[_Record], cfg: CorpusConfig, exclude: set[str], stats: CorpusStats
) -> Iterator[_RawDocument]:
    kept = _keep_records(records, exclude, stats)
    if cfg.group_column is None:
        for r in kept:
            yield _RawDocument(id=r.id or _place_id(r.path, r.line), source=r.source,
                              texts=[r.text])
    else:
        yield from _group(kept, cfg.group_window)


def _keep_records(
    records: Iterable[_Record], exclude: set[str], stats: CorpusStats
) -> Iterator[_Record]:
    for r in records:
        if r.id is not None and r.id in exclude:
            stats.excluded_records += 1
        elif not r.text:
            stats.empty += 1
        else:
            stats.records += 1
            yield r


def _group(records: Iterable[_Record], window: int) -> Iterator[_RawDocument]:
    """Join records with equal group values, within windows of ``window`` records."""
    groups: dict[str, _RawDocument] = {}
    for n, r in enumerate(records, 1):
        key = r.group or ""
        if key in groups:
            groups[key].texts.append(r.text)
        else:
            groups[key] = _RawDocument(id=key, source=r.source, texts=[r.text])
        if n % window == 0:
            yield from groups.values()
            groups = {}
    yield from groups.values()


def _drop_excluded_documents(
    docs: Iterable[_RawDocument], exclude: set[str], stats: CorpusStats
) -> Iterator[_RawDocument]:
    for doc in docs:
        if exclude and doc.id in exclude:
            stats.excluded_documents += 1
        else:
            yield doc


# ---------------------------------------------------------------- sentences and ids


def _split_in_batches(docs: Iterable[_RawDocument]) -> Iterator[_RawDocument]:
    """Split every text into sentences, ~_SPLIT_BATCH texts per kiwi call."""
    batch: list[_RawDocument] = []
    size = 0
    for doc in docs:
        batch.append(doc)
        size += len(doc.texts)
        if size >= _SPLIT_BATCH:
            yield from _split_batch(batch)
            batch, size = [], 0
    yield from _split_batch(batch)


def _split_batch(batch: list[_RawDocument]) -> Iterator[_RawDocument]:
    sentences = iter(split_sentences([t for doc in batch for t in doc.texts]))
    for doc in batch:
        doc.texts = [s for _ in doc.texts for s in next(sentences)]
        yield doc


def _ids_in_file(path: str) -> Iterator[str]:
    """One id a line, or the ``id`` column of a TSV/CSV header. Ids are ASCII in practice, so
    other columns are decoded leniently (a CP949 review next to an id does not matter)."""
    # Read whole (an id file is small): decoding line by line costs more than the ids.
    with _open_binary(path) as f:
        try:
            data = f.read()
        except (OSError, EOFError) as e:  # corrupt or truncated gzip
            raise HanlmError(f"cannot read: {e}", path=path) from None
    lines = data.decode("utf-8", errors="replace").removeprefix("\ufeff").split("\n")
    first = next((line.strip() for line in lines if line.strip()), "")
    for delimiter in ("\t", ","):
        columns = [c.strip() for c in first.split(delimiter)]
        if len(columns) > 1 and "id" in columns:
            quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
            rows = csv.reader(lines, delimiter=delimiter, quoting=quoting)
            at = columns.index("id")
            next((row for row in rows if row), None)  # the header
            yield from (row[at].strip() for row in rows if len(row) > at and row[at].strip())
            return
    yield from (line.strip() for line in lines if line.strip())
