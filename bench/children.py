"""Measurements that each run in a fresh process, shared by the data-build benches: peak RSS
and CPU seconds are then the measurement's own. Imports nothing heavy (no torch), so a child's
memory is what it measures plus the interpreter, as in `hanlm data build` itself."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time


def time_encode(texts: list[str], tokenizer: str) -> dict:
    """Bare `Tokenizer.encode_batch`, then `encode_batch_fast`, on `texts` already in memory:
    wall and CPU seconds of each, the texts' UTF-8 bytes and the tokens they make."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(f"{tokenizer}/tokenizer.json")
    start, cpu = time.perf_counter(), cpu_seconds()
    tok.encode_batch(texts, add_special_tokens=False)
    seconds, cpu_s = time.perf_counter() - start, cpu_seconds() - cpu
    # The stricter baseline: the same call without offsets, which hanlm's build uses.
    start, cpu = time.perf_counter(), cpu_seconds()
    encodings = tok.encode_batch_fast(texts, add_special_tokens=False)
    fast_seconds, fast_cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu_s, "fast_seconds": fast_seconds,
            "fast_cpu_seconds": fast_cpu, "bytes": sum(len(t.encode()) for t in texts),
            "texts": len(texts), "tokens": sum(len(e) for e in encodings)}


def cpu_split() -> tuple[float, float]:
    """User + system CPU seconds of this process (all its threads) and, apart, of its finished
    children (the build's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children together: on a loaded machine,
    the measure that other processes barely move."""
    return sum(cpu_split())


def run_child(*args: str, module: str = "bench.data_build", env: dict[str, str] | None = None) -> dict:
    """Run one measurement in a fresh process (`python -m module --child ...`, with `env` added
    to this one's environment); its last stdout line is its JSON result."""
    out = subprocess.run([sys.executable, "-m", module, "--child", *args], capture_output=True,
                         text=True, env=None if env is None else os.environ | env)
    if out.returncode:
        raise RuntimeError(f"{module} --child {' '.join(args)[:200]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_memory() -> dict:
    """Peak RSS of this process and of its largest finished child (a build's largest worker).

    This process's own is its address space's high-water mark (VmHWM), not ru_maxrss: Linux
    carries ru_maxrss across exec, so a child started from a parent holding torch would report
    the parent's few hundred MB as its own peak."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        with open("/proc/self/status") as status:
            own = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        pass
    return {"peak_rss_mb": own, "peak_rss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
