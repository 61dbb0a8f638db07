"""Text normalisation: the one place that decides what a clean Korean string is.

NFC, never NFD: NFD splits every Hangul syllable into conjoining jamo (한 -> ᄒ ᅡ ᆫ), which
is how lowercasing BERT tokenizers destroy Korean (google-research/bert #135, #228). Text from
macOS file names and some web pages arrives in NFD; it is composed here and counted, so a
corpus that needed it says so in the log.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Control characters that are line or field separators separate words: Python counts them all as
# whitespace, so the whitespace collapse turns them into spaces. Every other C0/C1 control
# character is dropped, and so are the zero-width space / non-joiner / joiner, the word joiner
# and the BOM (zero-width no-break space).
_SEPARATOR_CONTROLS = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_DROPPED = "".join(
    chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)] if chr(c) not in _SEPARATOR_CONTROLS
) + ZERO_WIDTH
# A regex, not str.translate: translate looks every character of non-ASCII text up in a dict,
# ~15x slower than this scan, which made it the largest cost of reading a Korean corpus.
_DROP = re.compile(f"[{re.escape(_DROPPED)}]")
assert all(c.isspace() for c in _SEPARATOR_CONTROLS)


@dataclass
class NormalizeStats:
    """Counts what normalisation changed, for the log of whoever reads a corpus."""

    texts: int = 0
    nfd_to_nfc: int = 0  # texts that were not in NFC (typically NFD) and were composed

    def describe(self) -> str:
        return f"normalised {self.nfd_to_nfc:,} of {self.texts:,} texts from NFD to NFC"


def normalize(text: str, stats: NormalizeStats | None = None) -> str:
    """NFC; control and zero-width characters removed; whitespace runs -> one space; stripped.

    Control characters go before composing, so a zero-width character between a jamo and its
    vowel cannot block composition.
    """
    text = _DROP.sub("", text)
    if stats is not None:
        stats.texts += 1
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
        if stats is not None:
            stats.nfd_to_nfc += 1
    return " ".join(text.split())


# Joins a batch for normalize_many: a private-use character, which no normalisation step touches
# and which composes with nothing, so the joined text normalises exactly as its parts do.
_JOIN = "\ue000"


def normalize_many(texts: list[str], stats: NormalizeStats | None = None) -> list[str]:
    """``[normalize(t, stats) for t in texts]``, in a few passes over the joined batch (a
    corpus reader's per-text calls cost about as much as reading the file). Batches holding the
    joining character, or text that is not NFC, are normalised one text at a time."""
    joined = _DROP.sub("", _JOIN.join(texts))
    if joined.count(_JOIN) != len(texts) - 1 or not unicodedata.is_normalized("NFC", joined):
        return [normalize(text, stats) for text in texts]
    if stats is not None:
        stats.texts += len(texts)
    return [part.strip(" ") for part in " ".join(joined.split()).split(_JOIN)]
