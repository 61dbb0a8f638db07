"""`hanlm data build`: stream documents, tokenize, pair and write shards with several processes.

The corpus is read once, in order, and cut into chunks of about `chunk_chars` characters; each
chunk becomes one train shard (and one eval shard). While the main process reads, worker
processes tokenize what it has read so far, in pieces of about `_PIECE_CHARS` characters, so
reading and tokenizing overlap even in a corpus of a single chunk; the main process then pairs
and writes each chunk once its pieces are back and the next chunk has been read and sent, so the
workers tokenize while it pairs (pairing costs a small fraction of tokenizing).
A chunk's output depends only on its documents, the seed and its index, so the result is
identical for any number of workers, and a killed build resumed with `--resume` reuses the
shards already written (their documents are read again, not tokenized). NotNext partners are
drawn from the same chunk: the reference implementation draws from the whole corpus, which needs
the whole corpus in memory.

Under `--on-error skip` the bad records are found by the reader, in the main process, which reads
the whole corpus on every run (a resumed build included, passing over the finished chunks): the
skipped.jsonl report written before meta.json therefore lists every skipped record, in corpus
order, whatever the workers and however often the build was resumed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hanlm import __version__, atomic
from hanlm import config as config_lib
from hanlm.atomic import write_skipped
from hanlm.config import opt
from hanlm.data.instances import (
    Instance,
    Pairs,
    TokenizedDocument,
    assemble,
    pairs_from_document,
)
from hanlm.data.shards import write_shard
from hanlm.errors import HanlmError
from hanlm.text import (
    SKIPPED_FILE,
    CorpusConfig,
    CorpusStats,
    Document,
    read_documents,
)
from hanlm.tokenizer import KoreanTokenizer
from hanlm.tokenizer import format as tokenizer_files

logger = logging.getLogger(__name__)


@dataclass
class DataBuildConfig:
    corpus: list[str] = opt(
        help="corpus files (.txt .jsonl .tsv .csv, WikiExtractor; .gz too)", positional=True
    )
    tokenizer: str = opt(help="tokenizer directory from `hanlm tokenizer train`")
    out: str = opt(help="output directory")
    max_len: int = opt(128, "sequence length in tokens, [CLS]/[SEP] included", min=8)
    short_seq_prob: float = opt(0.1, "probability of a shorter random target length", min=0)
    dupe_factor: int = opt(1, "passes over the corpus with different pairings", min=1)
    eval_fraction: float = opt(0.01, "fraction of documents held out for evaluation", min=0)
    seed: int = opt(12345, "random seed")
    workers: int = opt(0, "worker processes (0 = one per CPU core)", min=0)
    chunk_chars: int = opt(4_000_000, "characters per shard", min=1)
    resume: bool = opt(False, "reuse the shards of an interrupted build with the same settings")
    overwrite: bool = opt(False, "replace an existing output directory")
    reader: CorpusConfig = opt(factory=CorpusConfig, flatten=True)


@dataclass
class Chunk:
    index: int
    documents: list[Document]
    chars: int
    tokenized: list[_Tokenized]  # per document, its tokens once its piece is back


def _is_eval(doc_id: str, seed: int, fraction: float) -> bool:
    digest = hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


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


# ---------------------------------------------------------------- tokenizing, in pieces

# Characters per tokenizing job: small enough that workers start while the first chunk is still
# being read, large enough that a job's overhead (a few ms) is noise.
_PIECE_CHARS = 100_000

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


def _tokenized_chunks(
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
        if chars >= _PIECE_CHARS:
            send()
            piece, chars = [], 0
    if chunk is not None:
        if piece:
            send()
        yield chunk


# ---------------------------------------------------------------- pairing and writing


def _pairs(docs: list[TokenizedDocument], cfg: dict, rng: np.random.Generator,
           tok: KoreanTokenizer) -> Pairs:
    instances: list[Instance] = []
    for _ in range(cfg["dupe_factor"]):
        for i in range(len(docs)):
            instances += pairs_from_document(
                docs, i, max_len=cfg["max_len"], short_seq_prob=cfg["short_seq_prob"], rng=rng
            )
    return assemble(instances, cls_id=tok.cls_id, sep_id=tok.sep_id)


def write_chunk(chunk: Chunk, cfg: dict, out: Path, tok: KoreanTokenizer) -> dict:
    """Pair a tokenized chunk and write its train and eval shards; its stats."""
    tokenized = [t.get() for t in chunk.tokenized]
    is_eval = [_is_eval(d.id, cfg["seed"], cfg["eval_fraction"]) for d in chunk.documents]
    stats = {"index": chunk.index, "documents": len(chunk.documents), "chars": chunk.chars}
    for split, wanted in (("train", False), ("eval", True)):
        docs = [t for t, e in zip(tokenized, is_eval, strict=True) if e == wanted and t]
        rng = np.random.default_rng((cfg["seed"], chunk.index, int(wanted)))
        shard = out / split / f"shard-{chunk.index:05d}"
        stats[split] = write_shard(shard, _pairs(docs, cfg, rng, tok), vocab_size=tok.vocab_size)
        stats[split]["documents"] = len(docs)
    return stats


# ---------------------------------------------------------------- driver


def _prepare_out(cfg: DataBuildConfig, settings: dict) -> Path:
    out = Path(cfg.out)
    settings_file = out / "build_settings.json"
    if out.exists() and any(out.iterdir()):
        same = settings_file.is_file() and json.loads(settings_file.read_text()) == settings
        if cfg.resume and same:
            logger.info("resuming the build in %s", out)
            for stale in out.glob("**/.*.tmp-*"):  # half-written by the killed build
                if stale.is_dir():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()
            return out
        if cfg.resume and not same:
            raise HanlmError(
                "--resume: the directory holds a build with other settings or inputs "
                "(use --overwrite to start again)",
                path=str(out),
            )
        if not cfg.overwrite:
            raise HanlmError(
                "output directory is not empty; pass --overwrite to replace it or --resume to "
                "continue an interrupted build",
                path=str(out),
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(settings_file, json.dumps(settings, indent=2, ensure_ascii=False))
    return out


def _corpus_files(paths: list[str]) -> list[dict]:
    files = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise HanlmError("corpus file not found", path=p)
        st = path.stat()
        files.append({"path": str(path.resolve()), "bytes": st.st_size, "mtime": int(st.st_mtime)})
    return files


def build_dataset(cfg: DataBuildConfig) -> Path:
    started = time.time()
    tok = KoreanTokenizer.load(cfg.tokenizer)
    if cfg.max_len > 512:
        logger.warning("max_len %d exceeds BERT's usual 512 positions", cfg.max_len)
    job_cfg = {
        "max_len": cfg.max_len,
        "short_seq_prob": cfg.short_seq_prob,
        "dupe_factor": cfg.dupe_factor,
        "eval_fraction": cfg.eval_fraction,
        "seed": cfg.seed,
    }
    # --on-error changes no shard: a build that stopped at a bad record can resume with skip.
    reader = {k: v for k, v in config_lib.to_dict(cfg.reader).items() if k != "on_error"}
    settings = {
        **job_cfg,
        "chunk_chars": cfg.chunk_chars,
        "reader": reader,
        "corpus": _corpus_files(cfg.corpus),
        "tokenizer": tok.fingerprint,
    }
    out = _prepare_out(cfg, settings)
    tok_copy = out / "tokenizer"
    if not tok_copy.is_dir():
        with atomic.directory(tok_copy) as tmp:
            tokenizer_files.copy_files(Path(cfg.tokenizer), tmp)
    workers = cfg.workers or os.cpu_count() or 1
    stats = CorpusStats()
    documents = read_documents(cfg.corpus, cfg.reader, stats)
    results = _run_chunks(documents, job_cfg, out, cfg, workers, tok)
    meta = _summarise(results, cfg, settings, tok, started)
    meta["on_error"], meta["skipped"] = cfg.reader.on_error, len(stats.skipped)
    write_skipped(stats.skipped, out / SKIPPED_FILE)
    atomic.write_text(out / "meta.json", json.dumps(meta, indent=2, ensure_ascii=False))
    logger.info(
        "built %d train / %d eval instances (%d tokens) from %d documents in %.1fs -> %s",
        meta["splits"]["train"]["instances"],
        meta["splits"]["eval"]["instances"],
        meta["splits"]["train"]["tokens"],
        meta["documents"],
        meta["seconds"],
        out,
    )
    return out


def _done(out: Path, index: int) -> dict | None:
    marker = out / "chunks" / f"{index:05d}.json"
    return json.loads(marker.read_text()) if marker.is_file() else None


def _tokenizing(tok: KoreanTokenizer, workers: int, stack: contextlib.ExitStack
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


def _run_chunks(
    documents: Iterator[Document], job_cfg: dict, out: Path, cfg: DataBuildConfig, workers: int,
    tok: KoreanTokenizer,
) -> list[dict]:
    (out / "chunks").mkdir(exist_ok=True)
    results: list[dict] = []
    progress = tqdm(desc="data build", unit="chars", unit_scale=True, disable=None)
    limit = job_cfg["max_len"] - 3
    finished = {int(marker.stem) for marker in (out / "chunks").glob("*.json")}
    with contextlib.ExitStack() as stack:
        submit = _tokenizing(tok, workers, stack)
        indexed = assign_chunks(documents, cfg.chunk_chars)
        chunks = _tokenized_chunks(indexed, submit, finished.__contains__, limit)
        for chunk in _one_behind(chunks):
            stats = _done(out, chunk.index)  # written by an interrupted run with the same settings
            if stats is None:
                stats = write_chunk(chunk, job_cfg, out, tok)
                atomic.write_text(out / "chunks" / f"{chunk.index:05d}.json", json.dumps(stats))
            results.append(stats)
            progress.update(chunk.chars)
    progress.close()
    if not results:
        raise HanlmError("the corpus holds no documents", path=", ".join(cfg.corpus))
    return results


def _one_behind(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
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


def _summarise(
    results: list[dict], cfg: DataBuildConfig, settings: dict, tok: KoreanTokenizer, started: float
) -> dict:
    documents = sum(r["documents"] for r in results)
    if documents < 2:
        raise HanlmError(
            "next-sentence prediction needs at least two documents; this corpus has one "
            "(separate documents with blank lines, or use --group-column / --format lines)",
            path=", ".join(cfg.corpus),
        )
    splits = {}
    for split in ("train", "eval"):
        rows = [r[split] for r in results]
        splits[split] = {
            "instances": sum(r["instances"] for r in rows),
            "tokens": sum(r["tokens"] for r in rows),
            "random_next": sum(r["random_next"] for r in rows),
            "documents": sum(r["documents"] for r in rows),
        }
    if splits["train"]["instances"] == 0:
        raise HanlmError("no training instances could be built", path=", ".join(cfg.corpus))
    chars = sum(r["chars"] for r in results)
    seconds = time.time() - started
    return {
        "format": "hanlm-shards/1",
        "hanlm_version": __version__,
        "max_len": cfg.max_len,
        "vocab_size": tok.vocab_size,
        "tokenizer_fingerprint": tok.fingerprint,
        "pretokenize": tok.pretokenize,
        "settings": settings,
        "documents": documents,
        "chars": chars,
        "shards": len(results),
        "splits": splits,
        "seconds": round(seconds, 2),
        "chars_per_second": round(chars / max(seconds, 1e-9)),
    }
