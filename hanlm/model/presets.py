"""Model sizes. tiny..medium follow Turc et al. 2019 ("Well-Read Students Learn Better", the
google-research/bert miniature models); base is BERT-base."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    layers: int
    hidden: int
    heads: int

    @property
    def intermediate(self) -> int:
        return 4 * self.hidden


PRESETS: dict[str, Preset] = {
    "tiny": Preset(layers=2, hidden=128, heads=2),
    "mini": Preset(layers=4, hidden=256, heads=4),
    "small": Preset(layers=4, hidden=512, heads=8),
    "medium": Preset(layers=8, hidden=512, heads=8),
    "base": Preset(layers=12, hidden=768, heads=12),
}
