"""File formats shared by the task readers: text decoding, CSV/TSV tables, JSON, JSONL.

Every function reports problems as a HanlmError naming the file and the line (or record). A
file that is not valid in the requested encoding is a file-level error; when it decodes as
CP949/EUC-KR (common for Korean files from Windows tools) the message says to pass
``--encoding cp949``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from hanlm.errors import HanlmError
from hanlm.formats import format_of
from hanlm.tasks.base import ReadOptions

Format = Literal["auto", "csv", "tsv", "json", "jsonl"]

_UTF8 = {"utf-8", "utf8", "utf_8", "utf-8-sig"}


def detect_format(path: Path, requested: str = "auto") -> str:
    """The requested format, or with ``auto`` the one the extension means for a task file
    (:mod:`hanlm.formats`: a task ``.txt`` is NSMC's TSV, a ``.json`` one JSON document)."""
    if requested != "auto":
        return requested
    fmt = format_of(path, "task")
    if fmt is None:
        raise HanlmError(
            f"cannot tell the format from the extension '{path.suffix}'; pass --format "
            "csv, tsv, json or jsonl",
            path=str(path),
        )
    return fmt


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The file's text; a UTF-8 byte-order mark is dropped."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise HanlmError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise HanlmError("is a directory, expected a file", path=str(path)) from None
    codec = "utf-8-sig" if encoding.lower() in _UTF8 else encoding
    try:
        return data.decode(codec)
    except LookupError:
        raise HanlmError(f"unknown encoding '{encoding}'", path=str(path)) from None
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise HanlmError(
            f"not valid {encoding} (byte 0x{data[e.start]:02x}){_encoding_hint(data, encoding)}",
            path=str(path),
            line=line,
        ) from None


def _encoding_hint(data: bytes, encoding: str) -> str:
    if encoding.lower() not in _UTF8:
        return ""
    try:
        data.decode("cp949")
    except UnicodeDecodeError:
        return ""
    return "; it decodes as CP949/EUC-KR: pass --encoding cp949"


# ------------------------------------------------------------------------------ tables


def read_table(
    path: Path, options: ReadOptions, delimiter: str, required: list[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV/TSV file with a header line, as ``(line, {column: value})``.

    TSV is read without quote processing (NSMC and KorSTS contain bare quotes); CSV follows
    RFC 4180 quoting. A missing required column is a file error; a row with the wrong number
    of cells is rejected (raised, or skipped and recorded).
    """
    text = read_text(path, options.encoding)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    # strict: an unterminated quote is an error, not a field that swallows the rest of the file.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting,
                        strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise HanlmError("empty file (no header line)", path=str(path)) from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise HanlmError(
            f"missing column {', '.join(repr(c) for c in missing)} (header has: "
            f"{', '.join(header)}); set the column with --text-column/--label-column",
            path=str(path),
            line=1,
        )
    return _table_rows(path, reader, header, options)


def _table_rows(
    path: Path, reader: Any, header: list[str], options: ReadOptions
) -> Iterator[tuple[int, dict[str, str]]]:
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            options.reject(HanlmError(f"malformed row: {e}", path=str(path), line=start))
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line is not a record
        if len(row) != len(header):
            options.reject(HanlmError(
                f"expected {len(header)} columns ({', '.join(header)}), found {len(row)}",
                path=str(path), line=line,
            ))
            continue
        yield line, dict(zip(header, row, strict=True))


# ------------------------------------------------------------------------------ JSON


def load_json(path: Path, options: ReadOptions) -> Any:
    text = read_text(path, options.encoding)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise HanlmError(f"malformed JSON: {e.msg} (column {e.colno})", path=str(path),
                         line=e.lineno) from None


def read_json_records(path: Path, options: ReadOptions) -> list[tuple[int, Any]]:
    """The records of a JSON file holding a list (KLUE) or ``{"data": [...]}``, each with the
    line it starts on, so errors can name it."""
    text = read_text(path, options.encoding)
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _array_with_lines(path, text)
    tree = load_json(path, options)
    if isinstance(tree, dict) and isinstance(tree.get("data"), list):
        return [(None, r) for r in tree["data"]]
    raise HanlmError("expected a JSON list of records or {\"data\": [...]}", path=str(path))


def _array_with_lines(path: Path, text: str) -> list[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    out = []
    i = text.index("[") + 1
    n = len(text)
    try:
        while True:
            while i < n and text[i] in " \t\r\n,":
                i += 1
            if i >= n:
                raise json.JSONDecodeError("unterminated list", text, i)
            if text[i] == "]":
                return out
            line = text.count("\n", 0, i) + 1
            obj, i = decoder.raw_decode(text, i)
            out.append((line, obj))
    except json.JSONDecodeError as e:
        raise HanlmError(f"malformed JSON: {e.msg} (column {e.colno})", path=str(path),
                         line=e.lineno) from None


def read_jsonl(path: Path, options: ReadOptions) -> Iterator[tuple[int, Any]]:
    text = read_text(path, options.encoding)
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as e:
            options.reject(HanlmError(f"malformed JSON: {e.msg} (column {e.colno})",
                                      path=str(path), line=number))


def field(record: Any, name: str, path: Path, line: int | None, what: str = "record") -> Any:
    """``record[name]``, where a dotted name walks nested objects (``labels.label``)."""
    value = record
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise HanlmError(f"{what} has no field '{name}'", path=str(path), line=line)
        value = value[part]
    return value


def read_rows(
    path: Path, options: ReadOptions, fmt: str, required: list[str]
) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """Records of any tabular format as dicts: CSV/TSV rows, JSON list items, JSONL lines."""
    if fmt in ("csv", "tsv"):
        yield from read_table(path, options, "," if fmt == "csv" else "\t", required)
    elif fmt == "json":
        yield from read_json_records(path, options)
    elif fmt == "jsonl":
        yield from read_jsonl(path, options)
    else:
        raise HanlmError(f"unknown format '{fmt}'", path=str(path))
