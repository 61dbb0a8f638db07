"""KoreanTokenizer: the tokenizer the rest of hanlm uses, loaded from a tokenizer directory."""

from __future__ import annotations

import json
import logging
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tokenizers import Tokenizer, models

from hanlm.errors import HanlmError
from hanlm.tokenizer import char_classes
from hanlm.tokenizer.char_classes import CharClasses
from hanlm.tokenizer.format import (
    META_FILE,
    SPECIAL_TOKENS,
    TOKENIZER_FILE,
    VOCAB_FILE,
    converted_tokenizer,
    fingerprint,
    tokens_by_id,
)
from hanlm.tokenizer.pretokenize import eojeol_spans, kiwi_pieces

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

# Python's str.isspace (what eojeol_spans splits on) for every code point up to U+3000, the last
# one that has it; the extra final entry (False) stands for everything above.
_SPACE = np.array([chr(c).isspace() for c in range(0x3001)] + [False])
# Normalizers that act on each character or combining sequence alone: whole texts and their
# eojeols normalise alike (whitespace never composes with what follows it).
_LOCAL_NORMALIZERS = frozenset(
    {"NFC", "NFD", "NFKC", "NFKD", "BertNormalizer", "Lowercase", "StripAccents", "Strip"}
)


class KoreanTokenizer:
    """A WordPiece tokenizer plus what hanlm needs around it: special ids, eojeol starts for
    whole-word masking, and the kiwi pre-tokenization a ``tokenizer.json`` cannot hold."""

    def __init__(self, directory: Path, tokenizer: Tokenizer, pretokenize: str):
        # encode_words must return raw ids: a tokenizer.json may carry padding or truncation.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self.directory = directory
        self.pretokenize = pretokenize
        self._tokenizer = tokenizer
        self._hf: PreTrainedTokenizerFast | None = None
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            vocab[t] for t in SPECIAL_TOKENS
        )
        self.special_ids = frozenset(vocab[t] for t in SPECIAL_TOKENS)
        self.fingerprint = fingerprint(tokens_by_id(tokenizer))
        self._classes = _whole_text_classes(tokenizer)
        # Whether each id is a word's first piece (no "##"; [UNK] too): one per word.
        prefix = tokenizer.model.continuing_subword_prefix
        self._first_piece = np.ones(max(vocab.values()) + 1, dtype=bool)
        self._first_piece[[i for t, i in vocab.items() if t.startswith(prefix)]] = False

    @classmethod
    def load(cls, directory: str | Path) -> KoreanTokenizer:
        """Load a directory written by ``hanlm tokenizer train``, or the tokenizer of a BERT
        model directory (``tokenizer.json``, or only ``vocab.txt``), read without
        pre-tokenization."""
        directory = Path(directory)
        tokenizer = _read_tokenizer(directory)
        meta = _read_meta(directory)
        pretokenize = _pretokenize_mode(meta, directory)
        _warn_if_decomposing(tokenizer, directory)
        loaded = cls(directory, tokenizer, pretokenize)
        if meta.get("fingerprint") not in (None, loaded.fingerprint):
            logger.warning(
                "%s: vocabulary changed since training (fingerprint differs from %s)",
                directory,
                META_FILE,
            )
        return loaded

    def encode_words(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each text: (token ids as int32, without [CLS]/[SEP]; True where a token starts an
        eojeol of the original text, i.e. a whitespace-delimited word, punctuation included)."""
        ids, starts, counts = self.encode_words_flat(texts)
        edges = [0, *np.cumsum(counts).tolist()]
        return [(ids[lo:hi], starts[lo:hi]) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]

    def encode_words_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`encode_words` for a whole batch at once: every text's ids and eojeol starts back to
        back, and each text's token count.

        With hanlm's own vocabularies (``BertPreTokenizer``, which splits on whitespace anyway)
        the texts are encoded as they are, in one ``encode_batch_fast`` call, and each token's
        eojeol is read off the characters in one vectorised pass over the whole batch
        (char_classes says how). Otherwise (kiwi pieces, or a foreign pre-tokenizer) the texts
        are pre-split into eojeols (or kiwi morpheme pieces of them), encoded as pre-tokenized
        input, and the tokens' word ids map back to the eojeols. Both give the same ids and
        starts where both apply.
        """
        if not texts:
            return np.zeros(0, np.int32), np.zeros(0, bool), np.zeros(0, np.int64)
        if self.pretokenize == "kiwi" or self._classes is None:
            return _flat(self._encode_split(texts))
        return self._encode_raw(texts, self._classes)

    def _encode_split(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        if self.pretokenize == "kiwi":
            split = kiwi_pieces(texts)
        else:
            split = [[[text[s:e]] for s, e in eojeol_spans(text)] for text in texts]
        pieces = [[p for eojeol in eojeols for p in eojeol] for eojeols in split]
        encodings = self._tokenizer.encode_batch(pieces, add_special_tokens=False,
                                                 is_pretokenized=True)
        return [
            _with_word_starts(enc.ids, enc.word_ids, eojeols)
            for enc, eojeols in zip(encodings, split, strict=True)
        ]

    def _encode_raw(self, texts: list[str], classes: CharClasses) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whole texts through ``encode_batch_fast`` (no offsets: see char_classes); each
        token's eojeol read off the characters. A text whose pre-tokenizer words could not be
        counted exactly on its characters goes the pre-split way."""
        # The batch as one array of code points, each text followed by a newline (a separator,
        # so every text starts a new eojeol); text k's characters, newline included, are
        # codes[char_edges[k]:char_edges[k + 1]], its tokens ids[token_edges[k]:token_edges[k + 1]].
        joined = "\n".join(texts) + "\n"
        codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), np.uint32)
        lengths = np.fromiter(map(len, texts), np.int64, len(texts)) + 1
        char_edges = np.zeros(len(texts) + 1, np.int64)
        np.cumsum(lengths, out=char_edges[1:])
        encodings = self._tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        counts = np.fromiter(map(len, encodings), np.int64, len(encodings))
        token_edges = np.zeros(len(texts) + 1, np.int64)
        np.cumsum(counts, out=token_edges[1:])
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), np.int32, int(token_edges[-1]))
        # An eojeol starts at a non-space character at the beginning or after a space, as
        # eojeol_spans finds them; a pre-tokenizer word starts one when its first character does.
        space = _SPACE[np.minimum(codes, _SPACE.size - 1)]  # nothing above U+3000 is a space
        eojeol_start = ~space
        eojeol_start[1:] &= space[:-1]
        char_class = classes.of(codes)
        word_start = char_classes.word_starts(char_class)
        first_piece = self._first_piece[ids]
        # Exact only where each word gave one first piece: no character that vanishes or is
        # odd, no space the pre-tokenizer keeps inside a word, no special token written in
        # the text (it turns "[", "MASK", "]" into one token), as many words as first pieces.
        odd = (char_class >= char_classes.VANISHES) | (space & (char_class != char_classes.SEPARATES))
        exact = (_per_text(odd, char_edges) == 0) & (
            _per_text(word_start, char_edges) == _per_text(first_piece, token_edges))
        starts = np.zeros(ids.size, dtype=bool)
        starts[first_piece & np.repeat(exact, counts)] = eojeol_start[word_start & np.repeat(exact, lengths)]
        redo = np.flatnonzero(~exact).tolist()
        if not redo:
            return ids, starts, counts
        out = [(ids[lo:hi], starts[lo:hi]) for lo, hi in zip(token_edges[:-1], token_edges[1:], strict=True)]
        for k, encoded in zip(redo, self._encode_split([texts[k] for k in redo]), strict=True):
            out[k] = encoded
        return _flat(out)

    def hf(self) -> PreTrainedTokenizerFast:
        """The same tokenizer as stock ``transformers`` loads it (``AutoTokenizer``)."""
        if self._hf is None:
            from transformers import AutoTokenizer

            self._hf = AutoTokenizer.from_pretrained(str(self.directory))
        return self._hf

    def __repr__(self) -> str:
        return (
            f"KoreanTokenizer({str(self.directory)!r}, vocab_size={self.vocab_size}, "
            f"pretokenize={self.pretokenize!r}, fingerprint={self.fingerprint!r})"
        )


def _with_word_starts(
    ids: list[int], word_ids: list[int | None], eojeols: list[list[str]]
) -> tuple[np.ndarray, np.ndarray]:
    piece_to_eojeol = np.repeat(np.arange(len(eojeols)), [len(e) for e in eojeols])
    owner = piece_to_eojeol[np.asarray(word_ids, dtype=np.int64)] if ids else np.zeros(0, np.int64)
    starts = np.ones(len(ids), dtype=bool)
    starts[1:] = owner[1:] != owner[:-1]
    return np.asarray(ids, dtype=np.int32), starts


def _whole_text_classes(tokenizer: Tokenizer) -> CharClasses | None:
    """The tokenizer's character classes if whole texts can be encoded instead of their
    eojeols, else None.

    Needs BERT's pre-tokenizer (it splits on whitespace, so a text's words are its eojeols'
    words), normalizers that work character by character (checked by name), a space that
    separates words, and no added tokens but BERT's bracketed special tokens (one written in a
    text can only lower its count of first pieces, which the count check then sees).
    """
    spec = json.loads(tokenizer.to_str())
    if (spec.get("pre_tokenizer") or {}).get("type") != "BertPreTokenizer":
        return None
    norm = spec.get("normalizer") or {}
    parts = norm.get("normalizers", []) if norm.get("type") == "Sequence" else [norm] if norm else []
    if any(part.get("type") not in _LOCAL_NORMALIZERS for part in parts):
        return None
    added = {t.content for t in tokenizer.get_added_tokens_decoder().values()}
    if not added <= set(SPECIAL_TOKENS):
        return None
    classes = CharClasses(tokenizer)
    space = classes.of(np.array([ord(" ")], np.uint32))[0]
    return classes if space == char_classes.SEPARATES else None


def _flat(encoded: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.concatenate([e[0] for e in encoded]), np.concatenate([e[1] for e in encoded]),
            np.fromiter((e[0].size for e in encoded), np.int64, len(encoded)))


def _per_text(flags: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """How many flags are set in each [edges[k], edges[k + 1]) (empty ranges count 0)."""
    running = np.zeros(flags.size + 1, np.int64)
    np.cumsum(flags, out=running[1:])
    return running[edges[1:]] - running[edges[:-1]]


def _read_tokenizer(directory: Path) -> Tokenizer:
    if not directory.is_dir():
        raise HanlmError("tokenizer directory not found", path=str(directory))
    path = directory / TOKENIZER_FILE
    if path.is_file():
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as e:  # the Rust library raises a bare Exception
            raise HanlmError(f"unreadable {TOKENIZER_FILE}: {e}", path=str(directory)) from None
    elif (directory / VOCAB_FILE).is_file():  # a Hugging Face model directory, as klue/bert-base
        tokenizer = converted_tokenizer(directory)
    else:
        raise HanlmError(
            f"not a tokenizer directory: no {TOKENIZER_FILE} or {VOCAB_FILE} (train one with "
            "`hanlm tokenizer train`, or give a BERT model directory)",
            path=str(directory),
        )
    if not isinstance(tokenizer.model, models.WordPiece):
        raise HanlmError(
            f"{TOKENIZER_FILE} holds a {type(tokenizer.model).__name__} model; hanlm needs a BERT WordPiece tokenizer",
            path=str(directory),
        )
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise HanlmError(
            f"the vocabulary lacks {', '.join(missing)}: not a BERT tokenizer (needs {', '.join(SPECIAL_TOKENS)})",
            path=str(directory),
        )
    return tokenizer


def pretokenize_mode(directory: Path) -> str:
    """"kiwi" or "none": how the vocabulary in ``directory`` was pre-tokenized when trained
    (a directory without hanlm's metadata: "none")."""
    return _pretokenize_mode(_read_meta(directory), directory)


def _pretokenize_mode(meta: dict[str, Any], directory: Path) -> str:
    mode = meta.get("pretokenize", "none")
    if mode not in ("none", "kiwi"):
        raise HanlmError(f"unknown pretokenize mode {mode!r} in {META_FILE}", path=str(directory))
    return mode


def _read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_FILE
    if not path.is_file():
        logger.info("%s: no %s (not trained by hanlm): no pre-tokenization", directory, META_FILE)
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HanlmError(f"unreadable {META_FILE}: {e}", path=str(directory)) from None
    if not isinstance(meta, dict):
        raise HanlmError(f"{META_FILE} must hold a JSON object", path=str(directory))
    return meta


def _warn_if_decomposing(tokenizer: Tokenizer, directory: Path) -> None:
    """A foreign tokenizer that lowercases / strips accents turns Hangul into jamo."""
    spec = json.dumps(json.loads(tokenizer.to_str()).get("normalizer"))
    if any(s in spec for s in ('"lowercase": true', '"strip_accents": true', '"NFD"', '"NFKD"')):
        logger.warning(
            "%s: the normalizer lowercases or decomposes (NFD): Hangul syllables become jamo",
            directory,
        )
