"""Cutting the corpus into chunks (one train and one eval shard each) and tokenizing their
documents in pieces, in worker processes, while the corpus is still being read.

A piece is about `PIECE_CHARS` characters of documents; its tokens come back as one flat array
and are cut into `TokenizedDocument`s only when the chunk is paired (`Chunk.tokenized`).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hanlm.data.instances import TokenizedDocument
from hanlm.text import Document
from hanlm.tokenizer import KoreanTokenizer


@dataclass
class Chunk:
    index: int
    documents: list[Document]
    chars: int
    tokenized: list[_Tokenized]  # per document, its tokens once its piece is back


def _chars(doc: Document) -> int:
    return sum(len(s) for s in doc.sentences)


def assign_chunks(documents: Iterable[Document], chunk_chars: int) -> Iterator[tuple[int, Document]]:
    """Each document with the index of its chunk, as it is read. A chunk closes once it holds
    `chunk_chars` characters and two documents; a final chunk of one document joins the one
    before it (NSP needs a second document to draw NotNext partners from), so the first document
    of every later chunk is held back until a second one follows it."""
    index, count, chars = 0, 0, 0
    held: Document | None = None
    for doc in documents:
        if held is not None:
            yield index, held
            held = None
        count += 1
        chars += _chars(doc)
        if count == 1 and index > 0:
            held = doc
        else:
            yield index, doc
        if chars >= chunk_chars and count >= 2:
            index, count, chars = index + 1, 0, 0
    if held is not None:
        yield index - 1, held


# Characters per tokenizing job: small enough that workers start while the first chunk is still
# being read, large enough that a job's overhead (a few ms) is noise.
PIECE_CHARS = 100_000

_TOKENIZER: KoreanTokenizer | None = None  # the workers' tokenizer, inherited through fork


def _init_worker() -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # Rust's thread pool is unsafe after fork


def _encode_piece(texts: list[str], tok: KoreanTokenizer | None = None
                  ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Every text's tokens back to back, and each text's token count (compact to send back);
    with the worker's tokenizer unless given one."""
    tok = tok or _TOKENIZER
    assert tok is not None
    ids, starts, counts = tok.encode_words_flat(texts)
    return ids, starts, counts.tolist()


class _Piece:
    """Documents sent to be tokenized together; their TokenizedDocuments once back."""

    def __init__(self, documents: list[Document], pending: Any, limit: int):
        self.sentence_counts = [len(d.sentences) for d in documents]
        self._pending, self._limit = pending, limit
        self._documents: list[TokenizedDocument] | None = None

    def documents(self) -> list[TokenizedDocument]:
        if self._documents is None:
            ids, starts, lengths = self._pending.get()
            self._documents, token, sentence = [], 0, 0
            for count in self.sentence_counts:
                own = lengths[sentence : sentence + count]
                end = token + sum(own)
                self._documents.append(TokenizedDocument.from_lengths(
                    ids[token:end], starts[token:end], own, self._limit))
                token, sentence = end, sentence + count
        return self._documents


@dataclass
class _Tokenized:
    piece: _Piece
    position: int

    def get(self) -> TokenizedDocument:
        return self.piece.documents()[self.position]


class _Done:
    """`apply_async`'s result for work done on the spot (a build without worker processes)."""

    def __init__(self, value: Any):
        self.value = value

    def get(self) -> Any:
        return self.value


def tokenized_chunks(
    indexed: Iterable[tuple[int, Document]], submit: Callable[[list[str]], Any],
    finished: Callable[[int], bool], limit: int,
) -> Iterator[Chunk]:
    """The chunks, each passed on once its last document is read and sent to be tokenized; the
    documents of a chunk are sent in pieces as they are read (a finished chunk's are not sent:
    its shards exist)."""
    chunk: Chunk | None = None
    piece: list[Document] = []
    chars = 0

    def send() -> None:
        assert chunk is not None
        sent = _Piece(piece, submit([s for doc in piece for s in doc.sentences]), limit)
        chunk.tokenized += [_Tokenized(sent, k) for k in range(len(piece))]

    for index, doc in indexed:
        if chunk is not None and chunk.index != index:
            if piece:
                send()
            yield chunk
            chunk, piece, chars = None, [], 0
        if chunk is None:
            chunk = Chunk(index, [], 0, [])
        size = _chars(doc)
        chunk.documents.append(doc)
        chunk.chars += size
        if finished(index):
            continue
        piece.append(doc)
        chars += size
        if chars >= PIECE_CHARS:
            send()
            piece, chars = [], 0
    if chunk is not None:
        if piece:
            send()
        yield chunk


def tokenizing(tok: KoreanTokenizer, workers: int, stack: contextlib.ExitStack
                ) -> Callable[[list[str]], Any]:
    """How pieces get tokenized: by a pool of worker processes (closed with `stack`), or here.
    The workers inherit `tok` through fork rather than each loading it again (~0.3 s apiece,
    a third of the work on a corpus of a megabyte)."""
    global _TOKENIZER
    if workers <= 1:
        return lambda texts: _Done(_encode_piece(texts, tok))
    _TOKENIZER = tok
    try:
        pool = stack.enter_context(
            mp.get_context("fork").Pool(workers, initializer=_init_worker))
    finally:
        _TOKENIZER = None  # the workers have their copy; this process keeps no global
    return lambda texts: pool.apply_async(_encode_piece, (texts,))


def one_behind(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Each chunk once the next one has been read (and sent to be tokenized): while this
    process pairs and writes a chunk, the workers have the next one to tokenize instead of
    waiting for it (holds two chunks, not one)."""
    previous: Chunk | None = None
    for chunk in chunks:
        if previous is not None:
            yield previous
        previous = chunk
    if previous is not None:
        yield previous
