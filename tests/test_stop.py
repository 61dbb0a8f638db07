"""hanlm.train.stop: a signal inside the loop sets a flag (the step finishes and is saved), and
every process stops at the same step."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from hanlm.train.stop import StopRequested, all_agree, all_agree_each


def _deliver(sig: int) -> None:
    """Send `sig` to this process and give Python the chance to run its handler."""
    os.kill(os.getpid(), sig)
    for _ in range(100):  # the handler runs in the main thread between bytecodes
        time.sleep(0.001)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_sets_the_flag_instead_of_raising(sig):
    def previous(signum, frame):
        raise AssertionError("the handler from before the block ran inside it")

    before = signal.signal(sig, previous)
    try:
        with StopRequested() as stop:
            assert stop.signal is None
            _deliver(sig)
            assert stop.signal == sig
        assert signal.getsignal(sig) is previous
    finally:
        signal.signal(sig, before)


def test_second_signal_raises_and_handlers_are_restored():
    int_before, term_before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), StopRequested() as stop:
        _deliver(signal.SIGINT)
        assert stop.signal == signal.SIGINT
        _deliver(signal.SIGINT)
        raise AssertionError("a second Ctrl-C must stop at once")
    assert signal.getsignal(signal.SIGINT) is int_before
    assert signal.getsignal(signal.SIGTERM) is term_before


class _TwoProcesses:
    """An accelerator stand-in whose other process has `other_flag`."""

    num_processes = 2
    device = torch.device("cpu")

    def __init__(self, other_flag: bool):
        self.other = float(other_flag)
        self.reductions = 0

    def reduce(self, tensor, reduction):
        assert reduction == "sum"
        self.reductions += 1
        return tensor + self.other


class _OneProcess:
    num_processes = 1

    def reduce(self, tensor, reduction):
        raise AssertionError("one process needs no reduction")


@pytest.mark.parametrize("mine, other", [(False, False), (True, False), (False, True),
                                         (True, True)])
def test_all_agree_stops_every_process_if_any_wants_to(mine, other):
    accelerator = _TwoProcesses(other)
    assert all_agree(accelerator, mine) is (mine or other)
    assert accelerator.reductions == 1  # even when this process's flag is false


def test_all_agree_single_process():
    assert all_agree(_OneProcess(), True) is True
    assert all_agree(_OneProcess(), False) is False


@pytest.mark.parametrize("mine", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("other", [False, True])
def test_all_agree_each_agrees_on_every_flag_in_one_reduction(mine, other):
    """The fine-tuning loop's two per-step checks (time budget, signal) in one collective."""
    accelerator = _TwoProcesses(other)
    assert all_agree_each(accelerator, *mine) == tuple(m or other for m in mine)
    assert accelerator.reductions == 1


class _FlagsPerProcess:
    """Two processes whose other one holds `other` (one value per flag)."""

    num_processes = 2
    device = torch.device("cpu")

    def __init__(self, *other: bool):
        self.other = torch.tensor([float(o) for o in other])

    def reduce(self, tensor, reduction):
        return tensor + self.other


def test_all_agree_each_keeps_the_flags_apart():
    assert all_agree_each(_FlagsPerProcess(False, True), True, False) == (True, True)
    assert all_agree_each(_FlagsPerProcess(False, False), False, True) == (False, True)
    assert all_agree_each(_FlagsPerProcess(True, False), False, False) == (True, False)


def test_all_agree_each_single_process_reduces_nothing():
    assert all_agree_each(_OneProcess(), True, False) == (True, False)
    assert all_agree_each(_OneProcess(), False, False) == (False, False)
