"""The pretraining data order: a pure function of (seed, step), with or without a batch-size ramp."""

import numpy as np
import pytest

from hanlm.data.batches import BatchSchedule, global_batch, micro_batches


def test_ramp_grows_linearly_to_the_batch_then_stays():
    schedule = BatchSchedule(micro=32, ramp_steps=8, ramp_start=4)
    assert [schedule.micro_at(s) for s in range(10)] == [4, 7, 11, 14, 18, 21, 25, 28, 32, 32]
    assert BatchSchedule(micro=32).micro_at(0) == 32


@pytest.mark.parametrize("schedule", [
    BatchSchedule(micro=8),
    BatchSchedule(micro=8, accum=2, world=3, ramp_steps=5, ramp_start=2),
    BatchSchedule(micro=4, ramp_steps=100, ramp_start=9),  # a start above the batch is the batch
])
def test_each_batch_starts_where_the_previous_one_ended(schedule):
    for step in range(12):
        assert schedule.start(step + 1) == schedule.start(step) + schedule.size(step)
        assert schedule.size(step) == schedule.micro_at(step) * schedule.accum * schedule.world


@pytest.mark.parametrize("bucket_steps", [1, 8])
def test_a_ramped_run_sees_every_sample_once_per_epoch(bucket_steps):
    lengths = np.random.default_rng(0).integers(5, 129, size=500)
    schedule = BatchSchedule(micro=16, ramp_steps=20, ramp_start=2)
    steps = 0
    while schedule.start(steps) < lengths.size or steps % bucket_steps:  # whole windows
        steps += 1
    batches = [global_batch(s, schedule, lengths.size, 3, lengths=lengths, bucket_steps=bucket_steps)
               for s in range(steps)]
    assert [len(i) for i, _ in batches] == [schedule.size(s) for s in range(steps)]
    indices, epochs = np.concatenate([i for i, _ in batches]), np.concatenate([e for _, e in batches])
    first_epoch = indices[epochs == 0]
    assert sorted(first_epoch) == list(range(lengths.size))


def test_without_a_ramp_the_order_is_what_it_was():
    """Runs made before the ramp existed keep their data order (and so their resume)."""
    lengths = np.random.default_rng(1).integers(5, 129, size=32 * 64)
    n, size = lengths.size, 32
    for step in (0, 5, 37):
        window = step // 16
        old_positions = np.arange(window * 16 * size, (window + 1) * 16 * size)
        order = np.random.default_rng((7, 0)).permutation(n)[old_positions]
        by_length = np.argsort(lengths[order], kind="stable").reshape(16, size)
        visit = np.random.default_rng((7, window, 1)).permutation(16)
        expected = order[by_length[visit[step % 16]]]
        got, _ = global_batch(step, BatchSchedule(size), n, 7, lengths=lengths, bucket_steps=16)
        assert np.array_equal(got, expected)


def test_processes_and_accumulation_split_the_same_ramped_batch():
    """N processes with accumulation A see what one process with accumulation N*A sees."""
    lengths = np.random.default_rng(2).integers(5, 129, size=400)
    kw = dict(n=lengths.size, seed=5, lengths=lengths, bucket_steps=4)
    for step in range(6):
        one = micro_batches(step, BatchSchedule(micro=6, accum=4, ramp_steps=4, ramp_start=2), rank=0, **kw)
        two = [micro_batches(step, BatchSchedule(micro=6, accum=2, world=2, ramp_steps=4, ramp_start=2),
                             rank=r, **kw) for r in (0, 1)]
        one_rows = np.concatenate([i for i, _ in one])
        two_rows = np.concatenate([i for r in (0, 1) for i, _ in two[r]])
        assert sorted(one_rows) == sorted(two_rows)
