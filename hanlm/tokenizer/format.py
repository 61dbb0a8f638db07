"""The on-disk tokenizer directory: file names, special tokens, the pipeline, the fingerprint.

Shared by training (which writes a directory) and :class:`KoreanTokenizer` (which reads one).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

# BERT's order, so [PAD] = 0 as every BERT embedding and collator assumes.
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
META_FILE = "hanlm_tokenizer.json"
FILES = (TOKENIZER_FILE, VOCAB_FILE, CONFIG_FILE, SPECIAL_TOKENS_FILE, META_FILE)
CONTINUATION = "##"


def copy_files(source: Path, target: Path) -> None:
    """Copy the tokenizer files of `source` (those present) into the directory `target`."""
    for name in FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)


def new_normalizer() -> normalizers.Normalizer:
    """NFC, then BERT's cleaning with lowercase and accent stripping OFF.

    BertNormalizer(lowercase=True) -- the default of BertWordPieceTokenizer -- applies NFD and
    strips "accents", turning every Hangul syllable into jamo (google-research/bert #135, #228).
    """
    return normalizers.Sequence(
        [
            normalizers.NFC(),
            normalizers.BertNormalizer(
                clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
            ),
        ]
    )


def new_tokenizer(vocab: dict[str, int] | None = None) -> Tokenizer:
    """An (untrained, when ``vocab`` is None) WordPiece tokenizer with hanlm's pipeline."""
    model = (
        WordPiece(vocab, unk_token="[UNK]") if vocab is not None else WordPiece(unk_token="[UNK]")
    )
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = new_normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix=CONTINUATION)
    return tokenizer


def set_post_processor(tokenizer: Tokenizer) -> None:
    """``[CLS] $A [SEP]`` and ``[CLS] $A [SEP] $B:1 [SEP]:1``, as BERT."""
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )


def tokens_by_id(tokenizer: Tokenizer) -> list[str]:
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    return sorted(vocab, key=vocab.__getitem__)


def fingerprint(tokens: Iterable[str]) -> str:
    """sha256[:16] of the vocabulary in id order: two tokenizers agree iff their vocabs do."""
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()[:16]
