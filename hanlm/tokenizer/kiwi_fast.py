"""A transformers fast tokenizer for a ``--pretokenize kiwi`` vocabulary, with character offsets.

Pretraining cuts every eojeol at Kiwi's morpheme starts before WordPiece
(:func:`hanlm.tokenizer.pretokenize.kiwi_pieces`). Fine-tuning must cut the same way, or the
model reads token sequences it never saw; but the tasks need offsets into the original text
(NER tags characters, MRC answers are spans), which ``kiwi_split``'s re-joined text loses.
``tokenizers`` keeps offsets through a pre-tokenizer that splits its ``NormalizedString``, so
:class:`KiwiTokenizerFast` puts one in front of the vocabulary's own while it encodes. A Python
pre-tokenizer cannot be saved in ``tokenizer.json``: it is in place only during a call, so
``save_pretrained`` writes the stock file, and the ``hanlm_tokenizer.json`` beside it says
"kiwi" for the next load.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import NormalizedString, PreTokenizedString, pre_tokenizers

from hanlm.tokenizer.format import META_FILE
from hanlm.tokenizer.pretokenize import morpheme_starts


class KiwiPreTokenizer:
    """Splits each piece at Kiwi's morpheme starts inside its eojeols, as ``kiwi_pieces`` cuts
    the NFC text. Kiwi reads the NFC text (not the normalizer's output, which spaces out Hanja
    and drops control characters) and the cuts are carried over to the normalized string, the
    one a pre-tokenizer splits. ``prepare`` analyses a batch in one Kiwi call (~7x faster than
    a call per text); a piece it was not given (the text between two added tokens) is analysed
    alone, as normalized."""

    def __init__(self, normalizer: Any) -> None:
        self._normalizer = normalizer
        self._cuts: dict[str, list[int]] = {}  # normalized text -> where its pieces start

    def prepare(self, texts: Iterable[str]) -> None:
        for text, starts in morpheme_starts(sorted(set(texts))):
            normalized = self._normalizer.normalize_str(text) if self._normalizer else text
            where = _alignment(text, normalized)
            self._cuts[normalized] = sorted(where[start] for start in starts if start < len(text))

    def forget(self) -> None:
        self._cuts.clear()

    def pre_tokenize(self, pretok: PreTokenizedString) -> None:
        pretok.split(self._split)

    def _split(self, _: int, piece: NormalizedString) -> list[NormalizedString]:
        # piece.original is not the input when the normalizer changed lengths (NFD): key by
        # the normalized text
        normalized = piece.normalized
        if normalized not in self._cuts:  # not normalized again: BertNormalizer is not idempotent
            [(_, starts)] = morpheme_starts([normalized])
            self._cuts[normalized] = sorted(starts)
        out, last = [], 0
        for at in self._cuts[normalized]:  # cut inside eojeols only, as kiwi_pieces does
            if last < at < len(normalized) and not normalized[at - 1].isspace() \
                    and not normalized[at].isspace():
                out.append(piece[last:at])
                last = at
        out.append(piece[last:len(normalized)])
        return out


def _alignment(nfc: str, normalized: str) -> list[int]:
    """For each character of ``nfc``, its index in ``normalized`` (BertNormalizer's output of
    it: control characters dropped, whitespace made a space, spaces put around CJK ideographs;
    a dropped character maps to the next kept one)."""
    if nfc == normalized:
        return list(range(len(nfc)))
    where, j = [], 0
    for ch in nfc:
        while j < len(normalized) and normalized[j] == " " and not ch.isspace():
            j += 1  # a space the normalizer inserted
        where.append(j)
        if j < len(normalized) and (normalized[j] == ch or (ch.isspace() and normalized[j] == " ")):
            j += 1
    return where


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


class KiwiTokenizerFast:
    """A ``PreTrainedTokenizerFast`` whose ``__call__`` cuts words into Kiwi morphemes first,
    as the vocabulary was trained; everything else is the wrapped tokenizer's."""

    def __init__(self, tokenizer: Any, directory: Path) -> None:
        self._hf = tokenizer
        self._directory = directory
        self._kiwi = KiwiPreTokenizer(tokenizer.backend_tokenizer.normalizer)

    def __call__(self, text: Any = None, text_pair: Any = None, **kwargs: Any) -> Any:
        backend = self._hf.backend_tokenizer
        own = backend.pre_tokenizer
        self._kiwi.prepare(_strings(text) + _strings(text_pair))
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.PreTokenizer.custom(self._kiwi), own])
        try:
            return self._hf(text, text_pair, **kwargs)
        finally:
            backend.pre_tokenizer = own
            self._kiwi.forget()

    def save_pretrained(self, directory: str | Path, **kwargs: Any) -> Any:
        saved = self._hf.save_pretrained(directory, **kwargs)
        shutil.copyfile(self._directory / META_FILE, Path(directory) / META_FILE)
        return saved

    def __len__(self) -> int:
        return len(self._hf)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_hf", "_directory", "_kiwi"):
            raise AttributeError(name)  # not set yet (copy, pickle): never recurse
        return getattr(self._hf, name)
