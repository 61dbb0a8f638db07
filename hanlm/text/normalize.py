"""Text normalisation: the one place that decides what a clean Korean string is.

NFC, never NFD: NFD splits every Hangul syllable into conjoining jamo (한 -> ᄒ ᅡ ᆫ), which
is how lowercasing BERT tokenizers destroy Korean (google-research/bert #135, #228). Text from
macOS file names and some web pages arrives in NFD; it is composed here and counted, so a
corpus that needed it says so in the log.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Control characters that are line or field separators become spaces (they separate words);
# every other C0/C1 control character is dropped.
_SEPARATOR_CONTROLS = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85"
# Zero-width space / non-joiner / joiner, word joiner, and the BOM (zero-width no-break space).
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"


def _translation_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {c: None for c in [*range(0x20), *range(0x7F, 0xA0)]}
    table.update({ord(c): " " for c in _SEPARATOR_CONTROLS})
    table.update({ord(c): None for c in ZERO_WIDTH})
    return table


_TABLE = _translation_table()


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
    text = text.translate(_TABLE)
    if stats is not None:
        stats.texts += 1
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
        if stats is not None:
            stats.nfd_to_nfc += 1
    return " ".join(text.split())
