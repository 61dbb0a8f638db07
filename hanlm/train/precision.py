"""Choosing the training precision by measuring it on this machine.

CPUs differ: with AVX512-BF16 or AMX a bf16 matmul runs 2-3x an fp32 one, without them bf16 is
emulated and slower. GPUs with bf16 (Ampere and later) are always faster in it. `auto` therefore
asks the hardware: on a GPU its capability, on a CPU a short timing of the model's own
feed-forward shape (forward and backward, under autocast as training runs it) in fp32 and in
bf16. bf16 is kept only when it is clearly faster, since its results differ from fp32's in the
last bits. The choice and the figures behind it are logged.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from dataclasses import dataclass

import torch

from hanlm.errors import HanlmError

logger = logging.getLogger(__name__)

# bf16 must be this much faster to be chosen: below it the timing noise of a loaded machine
# could flip the choice between runs.
BF16_MIN_SPEEDUP = 1.15
_ACCELERATE_NAMES = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # fp32, bf16 or fp16
    reason: str

    @property
    def accelerate(self) -> str:
        """The name Accelerate's `mixed_precision` takes."""
        return _ACCELERATE_NAMES[self.precision]


def choose_precision(requested: str, hidden_size: int, *, cuda: bool | None = None,
                     resumed: str | None = None) -> PrecisionChoice:
    """`requested` unless it is `auto`; then the precision of the run being resumed (`resumed`,
    from its checkpoint), else bf16 where it is measured (CPU) or known (GPU) to be faster for
    a model of `hidden_size`, else fp32.

    A resumed run keeps its precision rather than measuring anew: on a machine that is busier
    than when the run started the measurement can come out the other way, and a run that
    changed precision halfway would no longer be the run its checkpoints and logs describe."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if requested != "auto":
        if resumed is not None and resumed != requested:
            return PrecisionChoice(requested, f"asked for (the run so far trained in {resumed})")
        return PrecisionChoice(requested, "asked for")
    if resumed is not None:
        return PrecisionChoice(resumed, "the resumed run's, chosen when it started")
    if cuda:
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", "this GPU supports bf16")
        return PrecisionChoice("fp32", "this GPU has no bf16")
    return _measured_on_cpu(hidden_size)


def decide_precision(requested: str, hidden_size: int, *, resumed: str | None = None
                     ) -> PrecisionChoice:
    """`choose_precision`, logged: every verb that computes (pretrain, finetune, evaluate,
    predict) says in one spelling what it computes in and why."""
    choice = choose_precision(requested, hidden_size, resumed=resumed)
    logger.info("precision %s: %s", choice.precision, choice.reason)
    return choice


def require_device_for(precision: str, device: torch.device) -> None:
    """fp16 only on a GPU: a CPU has no fp16 matmul, autocast would emulate it (slower than
    fp32) and Accelerate's loss scaling is CUDA's. Refused by name rather than run in another
    precision than the one asked for."""
    if precision == "fp16" and device.type != "cuda":
        raise HanlmError("--precision fp16 needs a GPU; on a CPU use bf16 or fp32")


def autocast(precision: str, device: torch.device):
    """The context a forward runs under in `precision`: autocast to bf16 or fp16, nothing in
    fp32. (Training's fp16 goes through Accelerate for its loss scaling instead: Runtime.)"""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


@functools.cache
def _measured_on_cpu(hidden_size: int) -> PrecisionChoice:
    """Measured once per process and width, so that the runs of one process (a study, a test
    suite) agree and do not each pay for the measurement."""
    fp32, bf16 = cpu_step_seconds(hidden_size)
    speedup = fp32 / bf16
    figures = f"a {hidden_size}-wide feed-forward step: fp32 {fp32 * 1e3:.1f} ms, bf16 {bf16 * 1e3:.1f} ms"
    if speedup >= BF16_MIN_SPEEDUP:
        return PrecisionChoice("bf16", f"bf16 measured {speedup:.2f}x faster on this CPU ({figures})")
    return PrecisionChoice("fp32", f"bf16 measured {speedup:.2f}x fp32 on this CPU, below "
                                   f"{BF16_MIN_SPEEDUP}x ({figures})")


def cpu_step_seconds(hidden_size: int, *, tokens: int = 512,
                     seconds: float = 0.5) -> tuple[float, float]:
    """(fp32, bf16) seconds of a forward + backward through a BERT feed-forward block (hidden ->
    4 x hidden -> hidden) over `tokens` rows, in fp32 and under bf16 autocast.

    The two are timed in turn, step by step, and each is its fastest step: other processes on
    the machine only ever slow a step down, so the minimum is the least disturbed reading, and
    taking turns exposes both to the same background load. On one thread: what is compared is
    the kernels' speed per core, and several threads wait for each other whenever another
    process holds one of their cores, which on a busy machine swamps the difference."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _timed_in_turn(hidden_size, tokens, seconds)
    finally:
        torch.set_num_threads(threads)


def _timed_in_turn(hidden_size: int, tokens: int, seconds: float) -> tuple[float, float]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, hidden_size, generator=generator, requires_grad=True)
    up = torch.randn(4 * hidden_size, hidden_size, generator=generator, requires_grad=True)
    down = torch.randn(hidden_size, 4 * hidden_size, generator=generator, requires_grad=True)

    def step(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = torch.nn.functional.linear(torch.nn.functional.gelu(
                torch.nn.functional.linear(x, up)), down)
        y.float().sum().backward()
        return time.perf_counter() - start

    step(False), step(True)  # the first calls pay for kernel selection
    best = {False: float("inf"), True: float("inf")}
    deadline, turns = time.perf_counter() + seconds, 0
    while turns < 5 or time.perf_counter() < deadline:
        for bf16 in (False, True):
            best[bf16] = min(best[bf16], step(bf16))
        turns += 1
    return best[False], best[True]
