"""Record formats: JSONL (one object a line) and TSV/CSV tables with a header row, read into
`Record`s that name the file line they end on.

TSV is read without quote handling (``csv.QUOTE_NONE``): NSMC-style files are not quoted, and
736 raw NSMC reviews start with ``"``, which a quoting reader would join with the following
lines. CSV follows RFC 4180 quoting, an unterminated quote being an error.
"""

from __future__ import annotations

import csv
import difflib
import json
from collections.abc import Iterable, Iterator

from hanlm.errors import HanlmError
from hanlm.text.lines import batched
from hanlm.text.normalize import normalize, normalize_many
from hanlm.text.records import CorpusConfig, CorpusStats, Record, reject_record

_FIELD_LIMIT = 2**31 - 1  # the largest the csv module accepts on every platform


def read_jsonl(
    path: str, lines: Iterable[tuple[int, str]], cfg: CorpusConfig, stats: CorpusStats
) -> Iterator[Record]:
    for lineno, line in lines:
        if not line.strip():
            continue
        try:
            record = _json_record(path, lineno, line, cfg, stats)
        except HanlmError as e:
            reject_record(e, cfg, stats)
            continue
        yield record


def _json_record(
    path: str, lineno: int, line: str, cfg: CorpusConfig, stats: CorpusStats
) -> Record:
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
    return Record(
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


def read_table(
    path: str, lines: Iterator[tuple[int, str]], cfg: CorpusConfig, fmt: str, stats: CorpusStats
) -> Iterator[Record]:
    rows = tsv_rows(path, lines) if fmt == "tsv" else _csv_rows(path, lines)
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
                reject_record(row, cfg, stats)
                continue
            kept.append((last, row))
        texts = normalize_many([row[text_at] for _, row in kept], stats.normalize)
        for (last, row), text in zip(kept, texts, strict=True):
            yield Record(
                text=text,
                id=row[id_at].strip() if id_at is not None else None,
                group=row[group_at] if group_at is not None else None,
                path=path,
                line=last,
            )
        if stop is not None:
            raise stop


_Row = tuple[int, int, "list[str] | HanlmError"]  # first line, last line, fields or the error


def tsv_rows(path: str, lines: Iterable[tuple[int, str]]) -> Iterator[_Row]:
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
