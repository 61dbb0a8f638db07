import numpy as np
import pytest

from hanlm.data.masking import (
    MaskingConfig,
    apply_mask,
    choose_positions,
    choose_units,
    prediction_target,
    sample_rng,
    word_units,
)

SPECIAL = {0, 1, 2, 3, 4}
VOCAB = 1000


def _sequence(rng, length=126):
    ids = np.concatenate(([2], rng.integers(5, VOCAB, length), [3])).astype(np.int64)
    starts = np.concatenate(([1], rng.random(length) < 0.4, [1])).astype(bool)
    starts[1] = True
    return ids, starts


def _mask_many(cfg, n=4000):
    rng = np.random.default_rng(0)
    random_ids = np.arange(5, VOCAB)
    totals = dict(chosen=0, maskable=0, masked=0, random=0, kept=0, special_chosen=0)
    for i in range(n):
        ids, starts = _sequence(rng)
        maskable = ~np.isin(ids, list(SPECIAL))
        r = sample_rng(1, i, 0)
        pos = choose_positions(starts, maskable, r, cfg)
        out, labels = apply_mask(ids, pos, r, mask_id=4, random_ids=random_ids, cfg=cfg)
        assert np.array_equal(labels, ids[pos])
        totals["chosen"] += pos.size
        totals["maskable"] += int(maskable.sum())
        totals["special_chosen"] += int((~maskable[pos]).sum())
        totals["masked"] += int((out[pos] == 4).sum())
        kept = out[pos] == ids[pos]
        totals["kept"] += int(kept.sum())
        totals["random"] += int(((out[pos] != 4) & ~kept).sum())
        untouched = np.setdiff1d(np.arange(ids.size), pos)
        assert np.array_equal(out[untouched], ids[untouched])
    return totals


def test_15_percent_and_80_10_10():
    t = _mask_many(MaskingConfig())
    assert t["special_chosen"] == 0
    assert t["chosen"] / t["maskable"] == pytest.approx(0.15, abs=0.003)
    assert t["masked"] / t["chosen"] == pytest.approx(0.8, abs=0.01)
    # a random draw equal to the original token counts as kept (1/995 of the 10%)
    assert t["random"] / t["chosen"] == pytest.approx(0.1, abs=0.01)
    assert t["kept"] / t["chosen"] == pytest.approx(0.1, abs=0.01)


def test_whole_word_statistics_and_special_tokens():
    t = _mask_many(MaskingConfig(whole_word_mask=True), n=2000)
    assert t["special_chosen"] == 0
    assert t["chosen"] / t["maskable"] == pytest.approx(0.15, abs=0.01)


def test_whole_word_masks_every_piece_of_a_word():
    rng = np.random.default_rng(3)
    cfg = MaskingConfig(whole_word_mask=True)
    for i in range(300):
        ids, starts = _sequence(rng, 60)
        maskable = ~np.isin(ids, list(SPECIAL))
        pos = set(choose_positions(starts, maskable, sample_rng(0, i, 0), cfg).tolist())
        for unit in word_units(starts, maskable, True):
            hit = {int(p) in pos for p in unit}
            assert len(hit) == 1, "a word is either fully chosen or not at all"


def test_word_units_split_at_special_tokens():
    starts = np.array([1, 1, 0, 0, 1, 0, 1], dtype=bool)
    maskable = np.array([0, 1, 1, 0, 1, 1, 0], dtype=bool)  # [CLS] w w [SEP] w w [SEP]
    units = [u.tolist() for u in word_units(starts, maskable, True)]
    assert units == [[1, 2], [4, 5]]


def test_deterministic_per_sample():
    ids, starts = _sequence(np.random.default_rng(5))
    maskable = ~np.isin(ids, list(SPECIAL))
    a = choose_positions(starts, maskable, sample_rng(7, 11, 2), MaskingConfig())
    b = choose_positions(starts, maskable, sample_rng(7, 11, 2), MaskingConfig())
    c = choose_positions(starts, maskable, sample_rng(7, 11, 3), MaskingConfig())
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("cfg", [MaskingConfig(), MaskingConfig(max_predictions=5),
                                 MaskingConfig(mlm_probability=0.4)])
def test_token_masking_takes_what_the_unit_loop_takes_and_draws_the_same(cfg):
    """The vectorised token path must give the masks the general unit loop gives (the masks of
    earlier runs, and of a resumed one), and leave the RNG where the loop leaves it."""
    rng = np.random.default_rng(5)
    for i in range(500):
        ids, starts = _sequence(rng, int(rng.integers(0, 126)))
        maskable = ~np.isin(ids, list(SPECIAL))
        maskable[rng.random(ids.size) < 0.05] = False
        fast_rng, loop_rng = sample_rng(2, i, 1), sample_rng(2, i, 1)
        fast = choose_positions(starts, maskable, fast_rng, cfg)
        n = int(maskable.sum())
        loop = (choose_units(word_units(starts, maskable, False), prediction_target(n, cfg), loop_rng) if n
                else np.empty(0, dtype=np.int64))
        assert np.array_equal(fast, loop)
        assert fast_rng.random() == loop_rng.random()
