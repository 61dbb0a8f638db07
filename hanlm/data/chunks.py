"""Cutting the corpus into chunks (one train and one eval shard each) and tokenizing their
documents in pieces, in worker processes, while the corpus is still being read; the workers
that pair and write the chunks (`Workers`).

A piece is about `PIECE_CHARS` characters of documents; its tokens come back as one flat array
(`PieceTokens`), travel on as such to the worker that pairs the chunk, and are cut into
`TokenizedDocument`s there.
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
    pieces: list[Piece]  # its documents' tokens, piece by piece, in document order


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


def _load_worker_tokenizer(directory: str) -> None:
    global _TOKENIZER
    _init_worker()  # two workers on two cores: no Rust threads on top
    _TOKENIZER = KoreanTokenizer.load(directory)


def _encode_piece(texts: list[str], tok: KoreanTokenizer
                  ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Every text's tokens back to back, and each text's token count (compact to send back)."""
    ids, starts, counts = tok.encode_words_flat(texts)
    return ids, starts, counts.tolist()


class Piece:
    """Documents sent to be tokenized together: how many sentences each has, and the pending
    result (every sentence's tokens back to back)."""

    def __init__(self, documents: list[Document], pending: Any):
        self.sentence_counts = [len(d.sentences) for d in documents]
        self.pending = pending

    def tokens(self) -> PieceTokens:
        """The tokens, waiting for them if needed, in the compact form they travel in."""
        return PieceTokens(*self.pending.get(), self.sentence_counts)


@dataclass
class PieceTokens:
    ids: np.ndarray
    starts: np.ndarray
    lengths: list[int]  # per sentence
    sentence_counts: list[int]  # per document

    def documents(self, limit: int) -> list[TokenizedDocument]:
        """Each document's tokens, cut into segments of at most `limit` (views, no copies)."""
        documents, token, sentence = [], 0, 0
        for count in self.sentence_counts:
            own = self.lengths[sentence : sentence + count]
            end = token + sum(own)
            documents.append(TokenizedDocument.from_lengths(
                self.ids[token:end], self.starts[token:end], own, limit))
            token, sentence = end, sentence + count
        return documents


class _Done:
    """`apply_async`'s result for work done on the spot (a build without worker processes)."""

    def __init__(self, value: Any):
        self.value = value

    def get(self) -> Any:
        return self.value


def tokenized_chunks(
    indexed: Iterable[tuple[int, Document]], submit: Callable[[list[str]], Any],
    finished: Callable[[int], bool],
) -> Iterator[Chunk]:
    """The chunks, each passed on once its last document is read and sent to be tokenized; the
    documents of a chunk are sent in pieces as they are read (a finished chunk's are not sent:
    its shards exist)."""
    chunk: Chunk | None = None
    piece: list[Document] = []
    chars = 0

    def send() -> None:
        assert chunk is not None
        chunk.pieces.append(Piece(piece, submit([s for doc in piece for s in doc.sentences])))

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


class Workers:
    """Where the build's work runs: a pool of worker processes (closed with the build's
    `stack`), or this process when there is one worker. Both the pieces' tokenizing and the
    chunks' pairing and writing go there, so the main process only reads and hands out work:
    at scale it would otherwise bound the build (docs/BENCHMARKS.md, corpus scale).

    The workers inherit `tok` through fork rather than each loading it again (~0.3 s apiece,
    a third of the work on a corpus of a megabyte), except with kiwi pre-tokenization: Kiwi
    does not survive fork (once this process has called it, as a study does to train the
    tokenizer first, a forked worker's first Kiwi call never returns, even from a new
    analyser), so those workers are spawned and load the tokenizer themselves."""

    def __init__(self, tok: KoreanTokenizer, workers: int, stack: contextlib.ExitStack):
        global _TOKENIZER
        self.tok, self.pool = tok, None
        if workers <= 1:
            return
        if tok.pretokenize == "kiwi":
            self.pool = stack.enter_context(mp.get_context("spawn").Pool(
                workers, initializer=_load_worker_tokenizer, initargs=(str(tok.directory),)))
            return
        _TOKENIZER = tok
        try:
            self.pool = stack.enter_context(
                mp.get_context("fork").Pool(workers, initializer=_init_worker))
        finally:
            _TOKENIZER = None  # the workers have their copy; this process keeps no global

    def tokenize(self, texts: list[str]) -> Any:
        return self.run(_encode_piece, texts)

    def run(self, job: Callable[..., Any], *args: Any) -> Any:
        """`job(*args, tok)` in a worker (its inherited tokenizer) or here; `.get()` waits for
        the result."""
        if self.pool is None:
            return _Done(job(*args, self.tok))
        return self.pool.apply_async(_with_worker_tokenizer, (job, *args))


def _with_worker_tokenizer(job: Callable[..., Any], *args: Any) -> Any:
    return job(*args, _TOKENIZER)


def one_behind(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Each chunk once the next one has been read (and sent to be tokenized): while this
    process waits for a chunk's last pieces, the workers have the next one's queued instead of
    running dry (holds two chunks, not one)."""
    previous: Chunk | None = None
    for chunk in chunks:
        if previous is not None:
            yield previous
        previous = chunk
    if previous is not None:
        yield previous
