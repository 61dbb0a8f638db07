"""``hanlm tokenizer train``: a WordPiece vocabulary for Korean, loadable by stock transformers."""

from __future__ import annotations

import itertools
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tokenizers import Tokenizer, trainers
from tqdm import tqdm

import hanlm
from hanlm.config import opt, to_dict
from hanlm.errors import HanlmError, write_skipped
from hanlm.text import SKIPPED_FILE, CorpusConfig, CorpusStats, read_texts
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
    new_tokenizer,
    set_post_processor,
    tokens_by_id,
)
from hanlm.tokenizer.pretokenize import KIWI_USAGE, kiwi_split

logger = logging.getLogger(__name__)

_KIWI_BATCH = 2000  # texts per kiwi call while training
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
    """Train WordPiece on the corpus and write a tokenizer directory; returns its path."""
    out = _prepare_out(Path(cfg.out), cfg.overwrite)
    start = time.perf_counter()
    stats = CorpusStats()
    counter = _Counter()
    texts: Iterable[str] = read_texts(cfg.corpus, cfg.reader, stats)
    if cfg.max_texts is not None:
        texts = itertools.islice(texts, cfg.max_texts)
    texts = tqdm(
        counter.count(texts), desc="tokenizer train", unit=" texts", disable=None, mininterval=2
    )
    if cfg.pretokenize == "kiwi":
        texts = _kiwi_split_batches(texts)
    tokenizer = new_tokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        limit_alphabet=cfg.limit_alphabet,
        special_tokens=SPECIAL_TOKENS,
        continuing_subword_prefix=CONTINUATION,
        show_progress=sys.stderr.isatty(),
    )
    logger.info(
        "training WordPiece (vocab %s, pretokenize %s) on %s",
        f"{cfg.vocab_size:,}",
        cfg.pretokenize,
        ", ".join(cfg.corpus),
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer, twins = _complete_alphabet(tokenizer, cfg.vocab_size)
    set_post_processor(tokenizer)
    seconds = time.perf_counter() - start
    write_skipped(stats.skipped, out / SKIPPED_FILE)
    meta = _meta(cfg, tokenizer, counter.n, twins, seconds)
    meta["training"]["skipped"] = len(stats.skipped)
    _save(tokenizer, out, meta)
    logger.info(
        "trained a %s-token vocabulary on %s texts in %.1f s (%s); wrote %s",
        f"{tokenizer.get_vocab_size():,}",
        f"{counter.n:,}",
        seconds,
        stats.normalize.describe(),
        out,
    )
    return out


class _Counter:
    n = 0

    def count(self, items: Iterable[str]) -> Iterator[str]:
        for item in items:
            self.n += 1
            yield item


def _prepare_out(out: Path, overwrite: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise HanlmError("--out exists and is not a directory", path=str(out))
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise HanlmError(
            "--out is not empty; pass --overwrite to replace the tokenizer in it", path=str(out)
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def _kiwi_split_batches(texts: Iterable[str]) -> Iterator[str]:
    iterator = iter(texts)
    while batch := list(itertools.islice(iterator, _KIWI_BATCH)):
        yield from kiwi_split(batch)


def _complete_alphabet(tokenizer: Tokenizer, vocab_size: int) -> tuple[Tokenizer, int]:
    """Give every single character both forms, ``c`` and ``##c``, within ``vocab_size``.

    The trainer adds ``##c`` only if ``c`` was seen inside a word (and ``c`` only if seen at a
    word start). WordPiece turns a whole word into [UNK] when one character cannot be matched,
    so a rare syllable seen once word-initially would make any later word with it inside
    [UNK]. Original BERT vocabularies carry both forms for the same reason. To stay at the
    requested size, as many of the last-learned (rarest) multi-character pieces make room;
    WordPiece needs no merge list, so dropping pieces never breaks tokenization.
    """
    vocab = tokenizer.get_vocab(with_added_tokens=False)
    tokens = sorted(vocab, key=vocab.__getitem__)
    chars = {t.removeprefix(CONTINUATION) for t in tokens if len(t.removeprefix(CONTINUATION)) == 1}
    missing = sorted(form for c in chars for form in (c, CONTINUATION + c) if form not in vocab)
    if not missing:
        return tokenizer, 0
    excess = min(len(missing), len(tokens) + len(missing) - vocab_size)
    dropped = set(_last_pieces(tokens, excess))
    kept = [t for t in tokens if t not in dropped] + missing
    completed = new_tokenizer({t: i for i, t in enumerate(kept)})
    completed.add_special_tokens(SPECIAL_TOKENS)
    logger.info(
        "added %d single-character forms so no character of the alphabet becomes [UNK], "
        "dropping the %d last-learned pieces",
        len(missing),
        len(dropped),
    )
    return completed, len(missing)


def _last_pieces(tokens: list[str], n: int) -> list[str]:
    """The ``n`` last tokens longer than one character (special tokens excepted)."""
    if n <= 0:
        return []
    pieces = [
        t for t in tokens if len(t.removeprefix(CONTINUATION)) > 1 and t not in SPECIAL_TOKENS
    ]
    return pieces[-n:]


def _meta(
    cfg: TokenizerTrainConfig, tokenizer: Tokenizer, texts: int, twins: int, seconds: float
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
            "single_character_forms_added": twins,
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
