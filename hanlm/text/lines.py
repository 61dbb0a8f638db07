"""A corpus file as numbered lines: opening (``.gz`` on the fly), decoding a block of whole
lines at a time, an encoding error that names its line, and batches of normalised lines."""

from __future__ import annotations

import codecs
import gzip
import itertools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from hanlm.errors import HanlmError
from hanlm.text.normalize import normalize_many
from hanlm.text.records import CorpusStats


def check_encoding(encoding: str) -> None:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise HanlmError(f"unknown encoding {encoding!r} (e.g. utf-8, cp949)") from None
    if name.startswith(("utf-16", "utf-32")):
        raise HanlmError(f"{encoding} files are not supported: convert the corpus to UTF-8")


def open_binary(path: str) -> IO[bytes]:
    p = Path(path)
    if not p.exists():
        raise HanlmError("file not found", path=path)
    if p.is_dir():
        raise HanlmError("is a directory, expected a corpus file", path=path)
    try:
        return gzip.open(p, "rb") if p.name.endswith(".gz") else p.open("rb")
    except OSError as e:
        raise HanlmError(f"cannot open: {e.strerror or e}", path=path) from None


def decoded_lines(
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
    with open_binary(path) as f:
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


BLOCK_BYTES = 1 << 20


def _line_blocks(f: IO[bytes]) -> Iterator[bytes]:
    """The file in blocks of about ``BLOCK_BYTES`` that end at a line break (or at its end)."""
    rest = b""
    while data := f.read(BLOCK_BYTES):
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


def peek(lines: Iterator[tuple[int, str]]) -> tuple[str, Iterator[tuple[int, str]]]:
    """The first non-blank line (stripped), and an iterator that still yields every line."""
    head = []
    for item in lines:
        head.append(item)
        if item[1].strip():
            return item[1].strip(), itertools.chain(head, lines)
    return "", iter(head)


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


def normalized_lines(
    lines: Iterable[tuple[int, str]], stats: CorpusStats
) -> Iterator[tuple[int, str]]:
    for batch in batched(lines):
        texts = normalize_many([line for _, line in batch], stats.normalize)
        yield from zip((lineno for lineno, _ in batch), texts, strict=True)
