"""Masked-language-model masking as pure functions (Devlin et al. 2019, section 3.1 / A.1).

Per sequence, 15% of the maskable tokens are chosen (exactly `round(0.15 * n)`, at least one, as
google-research/bert's create_pretraining_data.py does); each chosen token becomes [MASK] with
probability 0.8, a random token with 0.1, and stays itself with 0.1. Special tokens are never
chosen. With whole-word masking the unit is a word: all its pieces are chosen together. A word
is defined by character offsets (a whitespace-delimited eojeol for Korean), not by `##`
prefixes, so it works for any tokenizer and for morpheme pre-tokenization.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hanlm.config import opt


@dataclass
class MaskingConfig:
    mlm_probability: float = opt(0.15, "fraction of tokens to predict", min=0, exclusive_min=True)
    mask_fraction: float = opt(0.8, "of the chosen tokens, fraction replaced by [MASK]", min=0)
    random_fraction: float = opt(0.1, "of the chosen tokens, fraction replaced at random", min=0)
    whole_word_mask: bool = opt(False, "choose whole words (eojeol), all their pieces together")
    max_predictions: int | None = opt(None, "cap on predicted tokens per sequence", min=1)


def word_units(word_starts: np.ndarray, maskable: np.ndarray, whole_word: bool) -> list[np.ndarray]:
    """Positions grouped into masking units: single tokens, or whole words."""
    positions = np.flatnonzero(maskable)
    if not whole_word or positions.size == 0:
        return [positions[i : i + 1] for i in range(positions.size)]
    # A unit starts at a word start, or after a non-maskable token (e.g. [SEP], or a segment
    # truncated in the middle of a word).
    starts = word_starts[positions].astype(bool)
    starts[0] = True
    gaps = np.diff(positions) > 1
    starts[1:] |= gaps
    return np.split(positions, np.flatnonzero(starts)[1:])


def choose_positions(
    word_starts: np.ndarray, maskable: np.ndarray, rng: np.random.Generator, cfg: MaskingConfig
) -> np.ndarray:
    """Sorted positions to predict."""
    n_maskable = int(maskable.sum())
    if n_maskable == 0:
        return np.empty(0, dtype=np.int64)
    target = prediction_target(n_maskable, cfg)
    if not cfg.whole_word_mask:
        # Single tokens never overshoot, so the unit loop below would take the first `target`
        # of the same permutation: this is that result (same draws, same positions) without a
        # Python loop over tokens, which was most of the collation time of a small model's step.
        positions = np.flatnonzero(maskable)
        return np.sort(positions[rng.permutation(positions.size)[:target]])
    return choose_units(word_units(word_starts, maskable, True), target, rng)


def prediction_target(n_maskable: int, cfg: MaskingConfig) -> int:
    """How many positions of a sequence with `n_maskable` maskable tokens to predict (n > 0)."""
    target = max(1, int(round(n_maskable * cfg.mlm_probability)))
    return target if cfg.max_predictions is None else min(target, cfg.max_predictions)


def choose_units(units: list[np.ndarray], target: int, rng: np.random.Generator) -> np.ndarray:
    """Visit `units` in random order and take each that fits, until `target` positions are taken."""
    chosen: list[np.ndarray] = []
    count = 0
    for k in rng.permutation(len(units)):
        unit = units[k]
        if count + unit.size > target:
            continue  # as the reference implementation: skip a word that would overshoot
        chosen.append(unit)
        count += unit.size
        if count == target:
            break
    if not chosen:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen))


def apply_mask(
    ids: np.ndarray,
    positions: np.ndarray,
    rng: np.random.Generator,
    *,
    mask_id: int,
    random_ids: np.ndarray,
    cfg: MaskingConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (corrupted ids, labels at `positions`). `random_ids`: ids a random token is drawn
    from (the vocabulary without special tokens)."""
    out = ids.copy()
    labels = ids[positions].copy()
    draw = rng.random(positions.size)
    to_mask = positions[draw < cfg.mask_fraction]
    to_random = positions[
        (draw >= cfg.mask_fraction) & (draw < cfg.mask_fraction + cfg.random_fraction)
    ]
    out[to_mask] = mask_id
    out[to_random] = rng.choice(random_ids, size=to_random.size)
    return out, labels


def sample_rng(seed: int, index: int, epoch: int) -> np.random.Generator:
    """The masking RNG of one sample: a pure function of (seed, sample, epoch), so masks do not
    depend on batch size, process count or where a run was resumed."""
    return np.random.default_rng((seed, index, epoch))
