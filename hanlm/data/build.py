"""`hanlm data build`: stream documents, tokenize, pair and write shards with several processes.

The corpus is read once, in order, and cut into chunks of about `chunk_chars` characters; each
chunk becomes one train shard (and one eval shard). While the main process reads, worker
processes tokenize what it has read so far, in pieces (hanlm.data.chunks), so
reading and tokenizing overlap even in a corpus of a single chunk; once a chunk's pieces are back
and the next chunk has been read and sent, the chunk goes to a worker to be paired and written,
so the main process only reads, normalises and hands out work (pairing costs a small fraction of
tokenizing, but done by the main process it bounded the build at a few workers).
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
import os
import shutil
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from hanlm import __version__, atomic
from hanlm import config as config_lib
from hanlm.atomic import write_skipped
from hanlm.config import opt
from hanlm.data.chunks import (
    Chunk,
    PieceTokens,
    Workers,
    assign_chunks,
    one_behind,
    tokenized_chunks,
)
from hanlm.data.instances import (
    Instance,
    Pairs,
    TokenizedDocument,
    assemble,
    concatenate_pairs,
    pack_documents,
    pairs_from_document,
)
from hanlm.data.objective import data_kind
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
    tokenizer: str = opt(help="tokenizer directory from `hanlm tokenizer train`, or a BERT model "
                         "directory (tokenizer.json or vocab.txt) to continue pretraining it")
    out: str = opt(help="output directory")
    max_len: int = opt(128, "sequence length in tokens, [CLS]/[SEP] included", min=8)
    objective: Literal["bert", "mlm", "electra"] = opt(
        "bert", "the instances of a pretraining objective: bert = [CLS] A [SEP] B [SEP] "
        "next-sentence pairs; mlm and electra = documents packed back to back into full "
        "sequences, [SEP] between documents (no NSP)")
    short_seq_prob: float = opt(0.1, "probability of a shorter random target length", min=0)
    dupe_factor: int = opt(1, "passes over the corpus with different pairings", min=1)
    eval_fraction: float = opt(0.01, "fraction of documents held out for evaluation", min=0)
    seed: int = opt(12345, "random seed")
    workers: int = opt(0, "worker processes (0 = one per CPU core)", min=0)
    chunk_chars: int = opt(4_000_000, "characters per shard", min=1)
    resume: bool = opt(False, "reuse the shards of an interrupted build with the same settings")
    overwrite: bool = opt(False, "replace an existing output directory")
    reader: CorpusConfig = opt(factory=CorpusConfig, flatten=True)


def is_eval(doc_id: str, seed: int, fraction: float) -> bool:
    digest = hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


# ---------------------------------------------------------------- pairing and writing


def _instances(docs: list[TokenizedDocument], cfg: dict, rng: np.random.Generator,
               tok: KoreanTokenizer) -> Pairs:
    """NSP pairs, or packed sequences for objectives without NSP; each pass over the documents
    (`dupe_factor`) pairs or cuts them anew."""
    if data_kind(cfg.get("objective", "bert")) == "packed":
        passes = [pack_documents(docs, max_len=cfg["max_len"], cls_id=tok.cls_id,
                                 sep_id=tok.sep_id,
                                 offset=int(rng.integers(cfg["max_len"] - 2)) if k else 0)
                  for k in range(cfg["dupe_factor"])]
        return concatenate_pairs(passes)
    instances: list[Instance] = []
    for _ in range(cfg["dupe_factor"]):
        for i in range(len(docs)):
            instances += pairs_from_document(
                docs, i, max_len=cfg["max_len"], short_seq_prob=cfg["short_seq_prob"], rng=rng
            )
    return assemble(instances, cls_id=tok.cls_id, sep_id=tok.sep_id)


def write_chunk(chunk: Chunk, cfg: dict, out: Path, workers: Workers) -> Any:
    """Send a tokenized chunk to be paired and its train and eval shards written; `.get()`
    gives its stats. Its pieces' tokens come back here first (several workers may have
    tokenized them) and go out again as the pieces' flat arrays: a few large arrays per chunk,
    cheap to send, where documents would be thousands of small ones."""
    pieces = [piece.tokens() for piece in chunk.pieces]
    held_out = [is_eval(d.id, cfg["seed"], cfg["eval_fraction"]) for d in chunk.documents]
    stats = {"index": chunk.index, "documents": len(chunk.documents), "chars": chunk.chars}
    return workers.run(_pair_and_write, pieces, held_out, stats, cfg, out)


def _pair_and_write(pieces: list[PieceTokens], held_out: list[bool], stats: dict, cfg: dict,
                    out: Path, tok: KoreanTokenizer) -> dict:
    limit = cfg["max_len"] - 3  # [CLS] A [SEP] B [SEP]
    tokenized = [doc for piece in pieces for doc in piece.documents(limit)]
    for split, wanted in (("train", False), ("eval", True)):
        docs = [t for t, e in zip(tokenized, held_out, strict=True) if e == wanted and t]
        rng = np.random.default_rng((cfg["seed"], stats["index"], int(wanted)))
        shard = out / split / f"shard-{stats['index']:05d}"
        stats[split] = write_shard(shard, _instances(docs, cfg, rng, tok), vocab_size=tok.vocab_size)
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
        "objective": cfg.objective,
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


def _run_chunks(
    documents: Iterator[Document], job_cfg: dict, out: Path, cfg: DataBuildConfig, workers: int,
    tok: KoreanTokenizer,
) -> list[dict]:
    (out / "chunks").mkdir(exist_ok=True)
    results: list[dict] = []
    progress = tqdm(desc="data build", unit="chars", unit_scale=True, disable=None)
    finished = {int(marker.stem) for marker in (out / "chunks").glob("*.json")}
    # Chunks sent to be paired and written, by index and size only: the documents themselves
    # are let go as soon as they are sent.
    writing: deque[tuple[int, int, Any]] = deque()

    def collect(index: int, chars: int, pending: Any) -> None:
        stats = pending.get()
        atomic.write_text(out / "chunks" / f"{index:05d}.json", json.dumps(stats))
        results.append(stats)
        progress.update(chars)

    with contextlib.ExitStack() as stack:
        pool = Workers(tok, workers, stack)
        indexed = assign_chunks(documents, cfg.chunk_chars)
        chunks = tokenized_chunks(indexed, pool.tokenize, finished.__contains__)
        for chunk in one_behind(chunks):
            stats = _done(out, chunk.index)  # written by an interrupted run with the same settings
            if stats is not None:
                results.append(stats)
                progress.update(chunk.chars)
                continue
            writing.append((chunk.index, chunk.chars, write_chunk(chunk, job_cfg, out, pool)))
            # Two chunks in writing at most: memory stays that of a few chunks, and pairing
            # costs a small fraction of tokenizing, so more would not go faster.
            while len(writing) > 2:
                collect(*writing.popleft())
        while writing:
            collect(*writing.popleft())
    progress.close()
    if not results:
        raise HanlmError("the corpus holds no documents", path=", ".join(cfg.corpus))
    return results


def _summarise(
    results: list[dict], cfg: DataBuildConfig, settings: dict, tok: KoreanTokenizer, started: float
) -> dict:
    documents = sum(r["documents"] for r in results)
    if documents < 2 and data_kind(cfg.objective) == "pairs":
        raise HanlmError(
            "next-sentence prediction needs at least two documents; this corpus has one "
            "(separate documents with blank lines, or use --group-column / --format lines; "
            "--objective mlm needs no second document)",
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
