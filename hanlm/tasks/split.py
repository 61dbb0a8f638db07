"""Split one labelled file into train and held-out parts at run time, by group, with a seed.

KLUE NER/NLI/STS and KorQuAD ship only dev sets here (../shared/data/README.md), so experiments
split a dev file. The split is recomputed from (file, seed, fraction) every run and never
written back: KorQuAD's license forbids distributing a modified copy. Groups keep related
examples on one side (KorQuAD: an article; KLUE-NLI: a premise), so the held-out part never
shares a context with training.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from hanlm.errors import HanlmError

E = TypeVar("E")


def parse_split(spec: str) -> tuple[int, float]:
    """``"SEED:FRACTION"`` (e.g. ``"42:0.2"``: 20% of the groups held out, seed 42)."""
    try:
        seed_text, fraction_text = spec.split(":")
        seed, fraction = int(seed_text), float(fraction_text)
    except ValueError:
        raise HanlmError(f"--split-dev {spec!r}: expected SEED:FRACTION, e.g. 42:0.2") from None
    if not 0 < fraction < 1:
        raise HanlmError(f"--split-dev {spec!r}: the fraction must be between 0 and 1")
    return seed, fraction


def split_examples(
    examples: Sequence[E], group_of: Callable[[E], str], seed: int, fraction: float
) -> tuple[list[E], list[E]]:
    """(train, held_out): whole groups, shuffled with `seed`; ceil(fraction x groups) held out.

    Groups are sorted before shuffling, so the split depends only on the data and the seed.
    """
    groups = sorted({group_of(e) for e in examples})
    if len(groups) < 2:
        raise HanlmError("cannot split: the file has fewer than two groups of examples")
    random.Random(seed).shuffle(groups)
    n_held = min(len(groups) - 1, max(1, math.ceil(fraction * len(groups))))
    held = set(groups[:n_held])
    train = [e for e in examples if group_of(e) not in held]
    held_out = [e for e in examples if group_of(e) in held]
    return train, held_out
