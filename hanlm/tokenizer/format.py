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

from hanlm.errors import HanlmError

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
    """Copy the tokenizer files of `source` (those present) into the directory `target`; a
    model directory's ``vocab.txt`` tokenizer gets the ``tokenizer.json`` it lacked."""
    for name in FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    if not (source / TOKENIZER_FILE).is_file() and (source / VOCAB_FILE).is_file():
        converted_tokenizer(source).save(str(target / TOKENIZER_FILE))


def converted_tokenizer(directory: Path) -> Tokenizer:
    """The tokenizer that stock ``transformers`` builds for a Hugging Face model directory
    whose tokenizer is only ``vocab.txt`` (+ ``tokenizer_config.json``), as klue/bert-base and
    many Korean models ship theirs.

    ``do_lower_case`` is read as transformers reads it: absent means true, and BERT's
    lowercasing strips accents, which decomposes Hangul into jamo (refused: see
    `new_normalizer`). KLUE's tokenizer_config.json sets it to false.
    """
    from transformers import BertTokenizer  # vocab.txt is BERT's WordPiece format

    try:
        hf = BertTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as e:
        raise HanlmError(f"cannot build a tokenizer from {VOCAB_FILE}: {' '.join(str(e).split())}",
                         path=str(directory)) from None
    if not getattr(hf, "is_fast", False):
        raise HanlmError(f"transformers built no fast tokenizer from {VOCAB_FILE}",
                         path=str(directory))
    tokenizer = Tokenizer.from_str(hf.backend_tokenizer.to_str())
    if tokenizer.normalizer is not None and tokenizer.normalizer.normalize_str("한국어") != "한국어":
        raise HanlmError(
            f"the {VOCAB_FILE} tokenizer decomposes Hangul into jamo (do_lower_case is true, or "
            f"absent, which means true); set \"do_lower_case\": false in {CONFIG_FILE}",
            path=str(directory))
    return tokenizer


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
