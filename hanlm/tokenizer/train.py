"""``hanlm tokenizer train``: a WordPiece vocabulary for Korean, loadable by stock transformers."""

from __future__ import annotations

import itertools
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tokenizers import Tokenizer, trainers
from tqdm import tqdm

import hanlm
from hanlm.atomic import write_skipped
from hanlm.config import opt, to_dict
from hanlm.errors import HanlmError
from hanlm.text import SKIPPED_FILE, CorpusConfig, CorpusStats, batched, read_texts
from hanlm.tokenizer.format import (
    CONFIG_FILE,
    CONTINUATION,
    FILES,
    META_FILE,
    SPECIAL_TOKENS,
    SPECIAL_TOKENS_FILE,
    TOKENIZER_FILE,
    VOCAB_FILE,
    fingerprint,
    new_normalizer,
    new_tokenizer,
    set_post_processor,
    tokens_by_id,
)
from hanlm.tokenizer.pretokenize import KIWI_USAGE, kiwi_split

logger = logging.getLogger(__name__)

_KIWI_BATCH = 2000  # texts per kiwi call while training
_COUNT_BATCH = 1000  # texts per normalizer call while counting characters
_PLAIN_USAGE = (
    "transformers.AutoTokenizer.from_pretrained(DIR) loads it with NFC normalisation; "
    "BertTokenizerFast also loads it but applies no NFC (pass NFC text)."
)


@dataclass
class TokenizerTrainConfig:
    corpus: list[str] = opt(
        help="corpus files (.txt/.jsonl/.tsv/.csv, optionally .gz)", positional=True
    )
    out: str = opt(help="output directory")
    vocab_size: int = opt(
        32000, "vocabulary size (exceeded when the alphabet alone is larger)", min=10
    )
    min_frequency: int = opt(2, "minimum count for a merged piece to enter the vocabulary", min=1)
    # Above the ~2,350 common Hangul syllables plus Hanja/Latin/symbols: the default 1000 sends
    # rare syllables to [UNK] (DESIGN.md, Korean traps).
    limit_alphabet: int = opt(6000, "most distinct characters kept (Korean needs > 2,350)", min=1)
    pretokenize: Literal["none", "kiwi"] = opt(
        "none", "kiwi: cut words into morphemes with kiwipiepy before WordPiece (as KLUE)"
    )
    max_texts: int | None = opt(None, "train on at most this many texts", min=1)
    overwrite: bool = opt(False, "replace the tokenizer files of an existing --out directory")
    reader: CorpusConfig = opt(factory=CorpusConfig, flatten=True)


def train_tokenizer(cfg: TokenizerTrainConfig) -> Path:
    """Train WordPiece on the corpus and write a tokenizer directory; returns its path.

    The same corpus and settings always give the same ``tokenizer.json`` (see
    :func:`_deterministic_trainer`), so two runs of a pipeline pretrain on the same ids.
    """
    out = _prepare_out(Path(cfg.out), cfg.overwrite)
    start = time.perf_counter()
    stats = CorpusStats()
    with tempfile.TemporaryDirectory(prefix=".train-", dir=out) as tmp:
        texts_file = Path(tmp) / "texts.txt"
        n_texts, char_counts = _write_texts(cfg, stats, texts_file)
        alphabet = _alphabet(char_counts, cfg.limit_alphabet)
        logger.info(
            "training WordPiece (vocab %s, pretokenize %s, alphabet %s characters) on %s",
            f"{cfg.vocab_size:,}",
            cfg.pretokenize,
            f"{len(alphabet):,}",
            ", ".join(cfg.corpus),
        )
        tokenizer = new_tokenizer()
        tokenizer.train_from_iterator(
            _read_lines(texts_file), _deterministic_trainer(cfg, alphabet), length=n_texts
        )
    tokenizer = _canonical(tokenizer)
    set_post_processor(tokenizer)
    seconds = time.perf_counter() - start
    write_skipped(stats.skipped, out / SKIPPED_FILE)
    meta = _meta(cfg, tokenizer, n_texts, len(alphabet), seconds)
    meta["training"]["skipped"] = len(stats.skipped)
    _save(tokenizer, out, meta)
    logger.info(
        "trained a %s-token vocabulary on %s texts in %.1f s (%s); wrote %s",
        f"{tokenizer.get_vocab_size():,}",
        f"{n_texts:,}",
        seconds,
        stats.normalize.describe(),
        out,
    )
    return out


def _prepare_out(out: Path, overwrite: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise HanlmError("--out exists and is not a directory", path=str(out))
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise HanlmError(
            "--out is not empty; pass --overwrite to replace the tokenizer in it", path=str(out)
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_texts(cfg: TokenizerTrainConfig, stats: CorpusStats, path: Path) -> tuple[int, Counter]:
    """Read (and pre-tokenize) the corpus once into ``path``, one text a line; count characters.

    The trainer needs the alphabet before it sees the texts (:func:`_deterministic_trainer`),
    so the corpus is streamed twice; the second pass reads this file, so reading, cleaning and
    kiwi run once. A text's newlines become spaces: both are word boundaries to WordPiece.
    """
    texts: Iterable[str] = read_texts(cfg.corpus, cfg.reader, stats)
    if cfg.max_texts is not None:
        texts = itertools.islice(texts, cfg.max_texts)
    texts = tqdm(texts, desc="tokenizer: read", unit=" texts", disable=None, mininterval=2)
    if cfg.pretokenize == "kiwi":
        texts = _kiwi_split_batches(texts)
    normalizer = new_normalizer()
    counts: Counter = Counter()
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for batch in batched(texts, _COUNT_BATCH):
            lines = [" ".join(text.split()) for text in batch]
            f.writelines(line + "\n" for line in lines)
            counts.update(normalizer.normalize_str(" ".join(lines)))
            n += len(lines)
    for char in [c for c in counts if c.isspace()]:
        del counts[char]
    return n, counts


def _read_lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as f:
        for line in tqdm(f, desc="tokenizer: train", unit=" texts", disable=None, mininterval=2):
            yield line.rstrip("\n")


def _alphabet(counts: Counter, limit: int) -> list[str]:
    """The ``limit`` most frequent characters, ties broken by code point, in code-point order."""
    ranked = sorted(counts, key=lambda c: (-counts[c], c))[:limit]
    return sorted(ranked)


def _deterministic_trainer(cfg: TokenizerTrainConfig, alphabet: list[str]) -> trainers.Trainer:
    """A WordPiece trainer whose result does not depend on hash-map iteration order.

    ``tokenizers`` (0.23) numbers the ``##c`` forms in the order it iterates a hash map of
    words, and breaks ties between equally frequent merges by those numbers, so the same
    corpus gave a different vocabulary on every run (huggingface/tokenizers#1794), as did the
    characters tied at the ``limit_alphabet`` cut. Here the alphabet is chosen beforehand and
    both forms of each character, ``c`` and ``##c``, are given to the trainer up front (as
    special tokens, which only fixes their ids; :func:`_canonical` makes them ordinary). This
    also gives every character both forms: WordPiece turns a whole word into [UNK] when one
    character cannot be matched, so a syllable seen only word-initially in training would
    otherwise make any later word with it inside [UNK]; BERT's vocabularies carry both forms
    for the same reason.
    """
    return trainers.WordPieceTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        limit_alphabet=len(alphabet),
        initial_alphabet=alphabet,
        special_tokens=SPECIAL_TOKENS + [CONTINUATION + c for c in alphabet],
        continuing_subword_prefix=CONTINUATION,
        show_progress=sys.stderr.isatty(),
    )


def _canonical(trained: Tokenizer) -> Tokenizer:
    """The trained vocabulary renumbered: special tokens, characters, ``##`` characters, then
    the learned pieces in the order they were learned; only the five BERT specials stay special.
    """
    vocab = trained.get_vocab(with_added_tokens=False)
    learned = sorted(vocab, key=vocab.__getitem__)
    singles = [t for t in learned if t not in SPECIAL_TOKENS and len(t) == 1]
    continued = [CONTINUATION + c for c in singles if CONTINUATION + c in vocab]
    first = set(SPECIAL_TOKENS) | set(singles) | set(continued)
    order = SPECIAL_TOKENS + singles + continued + [t for t in learned if t not in first]
    tokenizer = new_tokenizer({t: i for i, t in enumerate(order)})
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return tokenizer


def _kiwi_split_batches(texts: Iterable[str]) -> Iterator[str]:
    for batch in batched(texts, _KIWI_BATCH):
        yield from kiwi_split(batch)


def _meta(
    cfg: TokenizerTrainConfig, tokenizer: Tokenizer, texts: int, alphabet: int, seconds: float
) -> dict[str, Any]:
    return {
        "format": "hanlm-tokenizer",
        "format_version": 1,
        "hanlm_version": hanlm.__version__,
        "pretokenize": cfg.pretokenize,
        "vocab_size": tokenizer.get_vocab_size(),
        "fingerprint": fingerprint(tokens_by_id(tokenizer)),
        "normalizer": "NFC, then BertNormalizer(lowercase=False, strip_accents=False)",
        "usage": KIWI_USAGE if cfg.pretokenize == "kiwi" else _PLAIN_USAGE,
        "corpus": [
            {"path": str(Path(p).resolve()), "bytes": Path(p).stat().st_size} for p in cfg.corpus
        ],
        "training": {
            "requested_vocab_size": cfg.vocab_size,
            "min_frequency": cfg.min_frequency,
            "limit_alphabet": cfg.limit_alphabet,
            "max_texts": cfg.max_texts,
            "texts": texts,
            "alphabet": alphabet,
            "seconds": round(seconds, 2),
            "reader": to_dict(cfg.reader),
        },
    }


def _save(tokenizer: Tokenizer, out: Path, meta: dict[str, Any]) -> None:
    tokenizer.save(str(out / TOKENIZER_FILE))
    (out / VOCAB_FILE).write_text(
        "".join(t + "\n" for t in tokens_by_id(tokenizer)), encoding="utf-8"
    )
    specials = dict(
        zip(
            ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"),
            SPECIAL_TOKENS,
            strict=True,
        )
    )
    _write_json(out / SPECIAL_TOKENS_FILE, specials)
    _write_json(out / CONFIG_FILE, _hf_config(specials, meta))
    _write_json(out / META_FILE, meta)
    assert all((out / f).is_file() for f in FILES)


def _hf_config(specials: dict[str, str], meta: dict[str, Any]) -> dict[str, Any]:
    """tokenizer_config.json for transformers.

    ``PreTrainedTokenizerFast``, not ``BertTokenizer``: transformers 5's BertTokenizer rebuilds
    its normalizer from do_lower_case/strip_accents and drops tokenizer.json's NFC step (checked
    with 5.24: NFD input then gives other ids). The generic fast class uses tokenizer.json as is;
    the BERT flags below still keep BertTokenizerFast.from_pretrained from lowercasing.
    """
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "do_lower_case": False,
        "strip_accents": False,
        "tokenize_chinese_chars": True,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
        "model_max_length": 512,
        **specials,
        "hanlm_pretokenize": meta["pretokenize"],
    }
    if meta["pretokenize"] == "kiwi":
        config["hanlm_usage"] = meta["usage"]
    return config


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
