"""What every benchmark here needs: the matmul ceiling, peak memory, clocks, the machine.

Timings on a shared 2-core machine are noisy (other jobs come and go), so nothing here reports
an absolute figure on its own: every bench measures its baseline in the same run and reports
ratios, and the pretraining bench makes its systems take turns step by step (`Turns`) so
that all see the same background load.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import time
from dataclasses import dataclass

import torch


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Every pretraining figure in docs/BENCHMARKS.md was measured at this peak lr, for every system;
# kept explicit (not `hanlm pretrain`'s per-preset default) so that the runs stay comparable.
BENCH_LR = 5e-4

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def matmul_flops_per_second(n: int = 2048, repeats: int = 3, dev: torch.device | None = None,
                            dtype: str = "fp32") -> float:
    """Best dense `torch.mm` rate of n x n matrices of `dtype` (fp32, bf16, fp16) on every
    thread torch uses: the machine's practical matmul ceiling in that precision (best-of,
    because background load only ever slows it)."""
    dev = dev or device()
    a = torch.randn(n, n, device=dev).to(DTYPES[dtype])
    b = torch.randn(n, n, device=dev).to(DTYPES[dtype])
    torch.mm(a, b)
    sync(dev)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        sync(dev)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def machine() -> dict:
    """What the figures were measured on (`lscpu` model name, cores, torch threads)."""
    model = platform.processor()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    info = {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_1min": os.getloadavg()[0],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


@dataclass
class Stopwatch:
    """Wall and process-CPU seconds of a span. CPU time is the noise-robust check: background
    jobs stretch wall time but barely change the CPU seconds a fixed amount of work needs."""

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


class Turns:
    """A token passed round a ring of processes: only the holder runs, the others wait.

    Each system of the pretraining bench holds the token for one optimizer step, then passes
    it on, so steps of the baselines and of hanlm alternate and all meet the same background
    load; a participant that has finished `leave`s the ring.
    """

    def __init__(self, n: int, ctx):
        self.events = [ctx.Event() for _ in range(n)]
        self.active = ctx.Array("b", [1] * n)
        self.events[0].set()

    def acquire(self, me: int) -> None:
        self.events[me].wait()
        self.events[me].clear()

    def release(self, me: int) -> None:
        n = len(self.events)
        for k in range(1, n + 1):
            nxt = (me + k) % n
            if self.active[nxt]:
                self.events[nxt].set()
                return

    def leave(self, me: int) -> None:
        self.active[me] = 0
        self.release(me)

    def others_active(self, me: int) -> bool:
        return any(self.active[i] for i in range(len(self.events)) if i != me)


def print_comparison(rows: list[tuple[str, str, str]], baseline: dict, hanlm: dict, ratios: dict,
                     *, label_width: int) -> None:
    """One line per (label, key, number format): baseline, hanlm, and their ratio where the
    report has one."""
    for label, key, fmt in rows:
        ratio = ratios.get(key)
        print(f"{label:>{label_width}} {fmt.format(baseline[key])} {fmt.format(hanlm[key])}"
              f" {'' if ratio is None else f'{ratio:10.2f}x'}")


def print_table(rows: list[tuple[str, str, str]], systems: dict[str, dict], ratios: dict[str, dict],
                *, label_width: int, width: int = 12) -> None:
    """One line per (label, key, number format): each system's figure, then each ratio column
    (`ratios`: column title -> {key: ratio}) where it has one."""
    print(f"{'':>{label_width}} " + " ".join(f"{name:>{width}}" for name in systems)
          + " " + " ".join(f"{title:>{width}}" for title in ratios))
    for label, key, fmt in rows:
        cells = [fmt.format(m[key]).rjust(width) for m in systems.values()]
        cells += ["".rjust(width) if r.get(key) is None else f"{r[key]:.2f}x".rjust(width) for r in ratios.values()]
        print(f"{label:>{label_width}} " + " ".join(cells))


def columns(records: list[dict]) -> dict[str, list]:
    """Per-step records as one list per field ({"seconds": [...], ...}): raw results stay a few
    lines long instead of one line per step."""
    return {key: [r[key] for r in records] for key in (records[0] if records else {})}


def write_json(path, data: dict) -> None:
    """Indented JSON whose innermost lists and objects (per-step records, lengths) take one line
    each, so a result file stays readable and diffable rather than one number a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_dumps(data, 0) + "\n", encoding="utf-8")


def _dumps(value, depth: int) -> str:
    def flat(v) -> str:
        return json.dumps(v, ensure_ascii=False, default=str)

    nested = isinstance(value, (dict, list)) and any(
        isinstance(v, (dict, list)) and v for v in (value.values() if isinstance(value, dict) else value))
    if not nested:
        return flat(value)
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict):
        items = [f"{inner}{flat(str(k))}: {_dumps(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [f"{inner}{_dumps(v, depth + 1)}" for v in value]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"


# operator name -> share group (first match wins); self-CPU time, so nothing is counted twice
PROFILE_GROUPS = (
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")),
    ("optimizer (AdamW)", ("_foreach_", "fused_adam", "adamw")),
    ("dropout", ("bernoulli", "dropout", "aten::random_")),
    ("softmax, mask", ("softmax", "masked_fill", "aten::where", "scaled_dot_product", "_efficient_attention",
                       "flash_attention")),
    ("layer norm", ("layer_norm",)),
    ("gelu", ("gelu",)),
    ("embedding (fwd/bwd)", ("embedding",)),
    ("element-wise", ("aten::mul", "aten::add", "aten::div", "aten::sum", "aten::sub", "aten::neg", "aten::sqrt")),
    ("copies, fills", ("copy_", "aten::clone", "aten::fill_", "aten::zero_", "aten::zeros", "aten::empty",
                       "aten::full", "contiguous")),
    ("grad norm / clip", ("norm", "clamp")),
)


def summarize_profile(prof, wall_seconds: float) -> dict:
    groups: dict[str, float] = {}
    ops = []
    for event in prof.key_averages():
        seconds = event.self_cpu_time_total / 1e6
        if seconds <= 0:
            continue
        ops.append((event.key, seconds))
        group = next((g for g, keys in PROFILE_GROUPS if any(k in event.key for k in keys)), "other operators")
        groups[group] = groups.get(group, 0.0) + seconds
    total = sum(groups.values())
    return {"wall_seconds": wall_seconds, "operator_self_cpu_seconds": total,
            "groups_share_of_operator_time": {g: t / total for g, t in sorted(groups.items(), key=lambda x: -x[1])},
            "top_operators": [{"op": k, "self_cpu_seconds": t} for k, t in sorted(ops, key=lambda x: -x[1])[:15]]}


def print_profile_groups(profile: dict) -> None:
    """`summarize_profile`'s groups, one line each, largest first."""
    for group, share in profile["groups_share_of_operator_time"].items():
        print(f"{group:>28} {share:6.1%}")
