"""Issue #6, reliability: no lost work, no silent data loss, clear errors, safe loading.

- every bad input of tests/reliability_cases.py through the CLI (one table, one test each);
- faults with real processes: SIGKILL + --resume of `data build` and `finetune` (pretrain's is
  in test_pretrain.py), a kill during an atomic write, a truncated checkpoint, a full disk,
  non-finite losses;
- safe loading: no pickle, no remote code, nothing listening beyond localhost;
- scale: peak RSS of `data build` and `pretrain` on 1x and 4x the corpus.

docs/RELIABILITY.md is rendered from what these tests observe: `python tests/gen_reliability_doc.py`.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_cases import CASES, Workspace, run_cli, shown
from reliability_cases import problems as case_problems
from safetensors.torch import load_file

from hanlm import atomic
from hanlm.errors import HanlmError
from hanlm.train.checkpoint import latest_checkpoint, list_checkpoints, save_checkpoint
from hanlm.train.log import read_metrics

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "RELIABILITY.md"
ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": str(ROOT)}

# What the tests observed, for docs/RELIABILITY.md (written when HANLM_RELIABILITY_DOC is set).
OBSERVED: dict[str, str] = {}
FAULTS: dict[str, tuple[str, str]] = {}
SCALE: dict[str, float] = {}


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("reliability"))


@pytest.fixture(scope="module", autouse=True)
def _write_doc():
    yield
    target = os.environ.get("HANLM_RELIABILITY_DOC")
    if target:
        from gen_reliability_doc import render

        Path(target).write_text(render(CASES, OBSERVED, FAULTS, SCALE), encoding="utf-8")


def fault(name: str, scenario: str, observed: str) -> None:
    FAULTS[name] = (scenario, observed)


def hanlm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "hanlm", *args], env=ENV, capture_output=True,
                          text=True, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"hanlm {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


def poll(condition, process: subprocess.Popen | None = None, timeout: float = 300) -> None:
    """Wait until condition() holds; fail if `process` ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError("the process finished before the kill point")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


# ============================================================================ bad input


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
    for c in CASES
])
def test_bad_input(case, ws, tmp_path):
    seen = run_cli(case.argv(ws, tmp_path))
    OBSERVED[case.id] = shown(case, seen, tmp_path, ws.root)
    found = case_problems(case, seen, tmp_path)
    assert not found, "\n".join(found)


def test_table_is_large_enough_and_documented():
    assert len([c for c in CASES if not c.ok]) >= 25
    assert len({c.id for c in CASES}) == len(CASES)
    if os.environ.get("HANLM_RELIABILITY_DOC"):
        return  # being regenerated
    doc = DOC.read_text(encoding="utf-8")
    missing = [c.id for c in CASES if f"`{c.id}`" not in doc]
    assert not missing, f"run `python tests/gen_reliability_doc.py`: {missing} not in {DOC.name}"


def test_cleaning_is_not_data_loss(ws, tmp_path):
    """Control, zero-width and NFD characters are cleaned: the shards equal a clean corpus's."""
    import unicodedata

    from reliability_cases import data_build, two_docs, write

    clean = two_docs("\n", "국회는 법률을 제정한다.\n")
    dirty = two_docs("\n", unicodedata.normalize("NFD", "국회는\u200b 법률을\x07 제정\u200d한다.\x00\n"))
    built = []
    for name, text in (("clean", clean), ("dirty", dirty)):
        out = tmp_path / name / "out"
        assert run_cli(data_build(ws, tmp_path / name, write(tmp_path / f"{name}.txt", text),
                                  "--eval-fraction", "0")).exit_code == 0
        built.append(np.load(out / "train" / "shard-00000" / "input_ids.npy"))
    assert np.array_equal(*built)


# ============================================================================ faults


def _big_corpus(path: Path, repeats: int) -> Path:
    """The embedded corpus, `repeats` times, as documents of six lines."""
    from hanlm.demo import embedded_corpus

    lines = [ln.strip() for ln in embedded_corpus().read_text(encoding="utf-8").splitlines()
             if ln.strip()]
    docs = ["\n".join(f"{ln} {r}" for ln in lines[i:i + 6])
            for r in range(repeats) for i in range(0, len(lines), 6)]
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


def _tree(directory: Path) -> dict[str, bytes]:
    """Every file of a build, meta.json without its timings."""
    files = {}
    for f in sorted(directory.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            if f.name == "meta.json":
                meta = json.loads(data)
                for key in ("seconds", "chars_per_second"):
                    meta.pop(key)
                data = json.dumps(meta, sort_keys=True).encode()
            files[str(f.relative_to(directory))] = data
    return files


def test_data_build_sigkill_and_resume_gives_identical_shards(ws, tmp_path):
    corpus = _big_corpus(tmp_path / "corpus.txt", 8)
    args = [str(corpus), "--tokenizer", str(ws.tok), "--workers", "1", "--chunk-chars", "10000",
            "--max-len", "32", "--dupe-factor", "3"]
    hanlm("data", "build", *args, "--out", str(tmp_path / "straight"))
    chunks = len(list((tmp_path / "straight" / "chunks").iterdir()))
    out = tmp_path / "resumed"
    kill_points = [0, chunks // 3, 2 * chunks // 3]  # finished chunks when SIGKILL arrives
    for n, done in enumerate(kill_points):
        p = subprocess.Popen([sys.executable, "-m", "hanlm", "data", "build", *args, "--out",
                              str(out), *(["--resume"] if n else [])],
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        poll(lambda done=done: (out / "chunks").is_dir()
             and len(list((out / "chunks").iterdir())) >= done, p)
        kill(p)
        # a killed build is never taken for a finished one
        refused = run_cli(["pretrain", "--data", str(out), "--out", str(tmp_path / "r")])
        assert refused.exit_code == 2 and "not a built data directory" in refused.error
    hanlm("data", "build", *args, "--out", str(out), "--resume")
    straight, resumed = _tree(tmp_path / "straight"), _tree(out)
    assert straight.keys() == resumed.keys()
    assert [k for k in straight if straight[k] != resumed[k]] == []
    fault("data-build-sigkill", f"`data build` SIGKILLed after {kill_points} of {chunks} chunks, "
          "then `--resume`", f"{len(straight)} files bit-identical to an uninterrupted build; "
          "pretrain refused each killed build (no meta.json)")


def test_finetune_sigkill_and_resume_is_bit_identical(ws, tmp_path):
    from reliability_cases import nsmc_table, write

    rows = [f"{i}\t{'영화가 정말 좋다' if i % 2 else '영화가 정말 싫다'} {i}\t{i % 2}" for i in range(40)]
    train = write(tmp_path / "train.txt", nsmc_table(rows))
    args = ["finetune", "--task", "nsmc", "--train", str(train), "--model", str(ws.hf),
            "--max-steps", "60", "--save-every", "10", "--batch-size", "4", "--no-progress",
            "--keep-checkpoints", "0", "--max-len", "32"]
    threads = {**ENV, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    out = tmp_path / "resumed"
    p = subprocess.Popen([sys.executable, "-m", "hanlm", *args, "--out", str(out)], env=threads,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    poll(lambda: any(int(c.name[5:]) >= 20 for c in list_checkpoints(out)), p)
    kill(p)
    killed_at = max(int(c.name[5:]) for c in list_checkpoints(out))
    # the straight run and the resumed one in this process (same thread count as the killed one)
    assert run_cli([*args, "--out", str(tmp_path / "straight")]).exit_code == 0
    assert run_cli([*args, "--out", str(out), "--resume"]).exit_code == 0
    a = load_file(list_checkpoints(tmp_path / "straight")[-1] / "model.safetensors")
    b = load_file(list_checkpoints(out)[-1] / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    fault("finetune-sigkill", f"`finetune` SIGKILLed after its step-{killed_at} checkpoint "
          "(60 steps), then `--resume`", "final weights bit-identical to an uninterrupted run")


def test_sigkill_during_an_atomic_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"previous")
    writer = ("import sys; from hanlm import atomic\n"
              "atomic.write_bytes(sys.argv[1], b'x' * (1 << 30))\n")
    p = subprocess.Popen([sys.executable, "-c", writer, str(target)], env=ENV)
    poll(lambda: any(f.name.startswith(".model.safetensors.tmp-") and f.stat().st_size > 1 << 20
                     for f in tmp_path.iterdir()), p)
    kill(p)
    assert target.read_bytes() == b"previous"
    left = sorted(f.name for f in tmp_path.iterdir() if f != target)
    assert all(name.startswith(".") for name in left)
    fault("kill-during-write", "SIGKILL while `atomic.write_bytes` writes 1 GiB over a file",
          f"the file keeps its previous content; besides it only {left} (hidden, never read)")


def test_interrupted_checkpoint_directory_is_never_used(tmp_path):
    """A checkpoint killed mid-write is either a hidden tmp directory or absent; a directory
    that lost a file (or a byte) fails its hashes and the previous one is used."""
    weights = {"w": torch.ones(3)}
    save_checkpoint(tmp_path, 1, model_state=weights, optimizer_state=None, state={})
    save_checkpoint(tmp_path, 2, model_state=weights, optimizer_state=None, state={})
    with pytest.raises(KeyboardInterrupt), atomic.directory(tmp_path / "checkpoints" / "step-00000003") as tmp:
        (tmp / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt  # as a Ctrl-C or kill in the middle of writing
    assert [c.name for c in list_checkpoints(tmp_path)] == ["step-00000001", "step-00000002"]
    (tmp_path / "checkpoints" / "step-00000002" / "rng.pt").unlink()
    assert latest_checkpoint(tmp_path).step == 1


def test_truncated_latest_checkpoint_resumes_from_the_previous_one(ws, tmp_path):
    run = tmp_path / "run"
    args = ["pretrain", "--data", str(ws.data), "--out", str(run), "--preset", "tiny",
            "--max-steps", "6", "--save-every", "2", "--keep-checkpoints", "0", "--batch-size",
            "4", "--eval-every", "0", "--no-tensorboard", "--threads", "1"]
    assert run_cli(args).exit_code == 0
    straight = load_file(run / "checkpoints" / "step-00000006" / "model.safetensors")
    shutil.rmtree(run / "checkpoints" / "step-00000006")
    latest = run / "checkpoints" / "step-00000004" / "model.safetensors"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    seen = run_cli([*args, "--resume"])
    assert seen.exit_code == 0
    warning = next(line for line in seen.log.splitlines() if "corrupted" in line)
    assert "step-00000004" in warning and "model.safetensors" in warning
    assert "(step 2)" in seen.log
    resumed = load_file(run / "checkpoints" / "step-00000006" / "model.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    fault("truncated-checkpoint", "`pretrain --resume` with the latest checkpoint's "
          "model.safetensors cut in half", warning.replace(str(tmp_path) + "/", "") +
          "; resumed from step 2, final weights bit-identical")


def test_metrics_log_repairs_a_cut_line_and_replaces_relogged_steps(tmp_path):
    from hanlm.train.log import MetricsLog

    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "split": sp}) + "\n"
                for s, sp in ((1, "train"), (2, "train"), (2, "eval"), (3, "train"), (4, "eval")))
        + '{"step": 4, "split": "tr', encoding="utf-8")
    log = MetricsLog(tmp_path, tensorboard=False)  # resumed from a step-2 checkpoint
    assert (tmp_path / "metrics.jsonl").read_text(encoding="utf-8").endswith("}\n")
    log.log(3, {"loss": 1.0})
    log.log(4, {"loss": 0.5})
    log.log(4, {"loss": 0.7}, split="eval")
    log.close()
    rows = [(r["step"], r["split"], r.get("loss")) for r in read_metrics(tmp_path)]
    assert rows == [(1, "train", None), (2, "train", None), (2, "eval", None), (3, "train", 1.0),
                    (4, "train", 0.5), (4, "eval", 0.7)]


def test_pretrain_resumed_after_a_kill_logs_each_step_once(ws, tmp_path):
    """A run killed while writing the step-5 record, after its step-4 checkpoint, then resumed."""
    from reliability_cases import pretrain as pretrain_argv

    def argv(out: Path, *flags: str) -> list[str]:
        return pretrain_argv(ws, tmp_path, "--max-steps", "6", "--save-every", "2",
                             "--log-every", "1", "--eval-every", "3", "--batch-size", "4",
                             "--keep-checkpoints", "0", *flags, out=out)

    straight, run = tmp_path / "straight", tmp_path / "run"
    assert run_cli(argv(straight)).exit_code == 0
    shutil.copytree(straight, run)
    shutil.rmtree(run / "checkpoints" / "step-00000006")
    (run / "final_metrics.json").unlink()
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if json.loads(line)["step"] == 5)
    (run / "metrics.jsonl").write_text("".join(lines[:cut + 1]) + lines[cut + 1][:20],
                                       encoding="utf-8")
    seen = run_cli(argv(run, "--resume"))
    assert seen.exit_code == 0, seen.stderr[-2000:]

    def rows(d: Path) -> list[tuple]:
        return [(r["step"], r["split"], r.get("loss")) for r in read_metrics(d)]

    assert rows(run) == rows(straight)
    assert len(rows(run)) == len({(step, split) for step, split, _ in rows(run)})
    fault("metrics-cut-line", "`pretrain` killed while writing its step-5 metrics record (last "
          "checkpoint: step 4), then `--resume`", f"metrics.jsonl: the cut line removed, steps "
          f"5-6 logged once: {len(rows(run))} records equal to an uninterrupted run's")


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (root only); skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to simulate a full disk: {done.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_full_disk_gives_a_clear_error_and_keeps_earlier_outputs(ws, small_disk):
    state = {f"w{i}": torch.randn(64, 256) for i in range(4)}  # 256 KiB a checkpoint
    save_checkpoint(small_disk, 1, model_state=state, optimizer_state=None, state={}, keep=0)
    saved = list_checkpoints(small_disk)
    messages = []
    with pytest.raises(HanlmError) as err:
        for step in range(2, 20):
            save_checkpoint(small_disk, step, model_state=state, optimizer_state={"m": state},
                            state={}, keep=0)
    messages.append(str(err.value))
    assert "no space left" in str(err.value)
    assert latest_checkpoint(small_disk) is not None and saved[0].is_dir()
    assert not [f for f in (small_disk / "checkpoints").iterdir() if f.name.startswith(".")]
    # data build onto the full disk: a one-line error, and no meta.json
    seen = run_cli(["data", "build", str(_big_corpus(small_disk.parent / "c.txt", 8)),
                    "--tokenizer", str(ws.tok), "--out", str(small_disk / "data"),
                    "--workers", "1", "--max-len", "32", "--dupe-factor", "3"])
    assert seen.exit_code == 2 and "no space left" in seen.error, seen.stderr[-2000:]
    assert not (small_disk / "data" / "meta.json").exists()
    messages.append(seen.error.replace(str(small_disk), "DISK"))
    fault("full-disk", "2 MiB tmpfs: checkpoints until it is full, then `data build` onto it",
          " / ".join(m.replace(str(small_disk), "DISK") for m in messages) +
          "; earlier checkpoints verify, no partial files left")


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_non_finite_loss(ws, tmp_path, policy):
    run = tmp_path / "run"
    seen = run_cli(["pretrain", "--data", str(ws.data), "--out", str(run), "--preset", "tiny",
                    "--max-steps", "4", "--save-every", "1", "--keep-checkpoints", "0",
                    "--batch-size", "4", "--eval-every", "0", "--no-tensorboard", "--threads",
                    "1", "--lr", "1e30", "--warmup-steps", "0",
                    "--nan-policy", policy])
    for ckpt in list_checkpoints(run):
        weights = load_file(ckpt / "model.safetensors")
        assert all(torch.isfinite(w).all() for w in weights.values()), ckpt.name
    if policy == "stop":
        assert seen.exit_code == 2 and re.search(r"at step \d+", seen.error), seen.stderr
        observed = shown(None, seen, tmp_path)
    else:
        assert seen.exit_code == 0
        skipped = [line for line in seen.log.splitlines() if "step skipped" in line]
        assert skipped and list_checkpoints(run)[-1].name == "step-00000004"
        observed = f"{len(skipped)} warnings such as '{skipped[0]}'; finished at step 4"
    fault(f"nan-{policy}", f"`pretrain --lr 1e30 --nan-policy {policy}`",
          observed + "; every checkpoint written holds finite weights only")


# ============================================================================ safe loading


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    found = []
    for path in sorted((ROOT / "hanlm").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(name):
                found.append((path, node))
    return found


def test_torch_load_is_always_weights_only_and_no_remote_code():
    loads = _calls("torch.load")
    assert loads
    for path, call in loads:
        kw = {k.arg: k.value for k in call.keywords}
        assert "weights_only" in kw and ast.literal_eval(kw["weights_only"]) is True, \
            f"{path}:{call.lineno}"
    for path in sorted((ROOT / "hanlm").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"trust_remote_code\s*=\s*(True|[a-z_.]+)", text), path
        for listening in ("0.0.0.0", ".bind(", "serve_forever", "HTTPServer", "server_name"):
            assert listening not in text, f"{path} may listen on a port ({listening})"


def test_trust_pickle_loads_with_a_warning(ws):
    seen = run_cli(["fill-mask", str(ws.pickle_only), "대한민국은 민주[MASK]이다.",
                    "--trust-pickle", "--top-k", "1"])
    assert seen.exit_code == 0
    assert "loading pickle weights (--trust-pickle)" in seen.log


# ============================================================================ scale

_RSS_SCRIPT = r"""
import json, sys
from hanlm.cli import main

def peak_mb():
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

tok, root, *corpora = sys.argv[1:]
out = {}
for name in corpora:  # the small corpus first: its leftovers can only raise the later baseline
    reset_peak()
    assert main(["data", "build", f"{root}/{name}.txt", "--tokenizer", tok, "--out",
                 f"{root}/{name}-data", "--workers", "1", "--max-len", "64",
                 "--chunk-chars", "20000"]) == 0
    out[f"data build {name}"] = peak_mb()
for name in corpora:
    reset_peak()
    assert main(["pretrain", "--data", f"{root}/{name}-data", "--out", f"{root}/{name}-run",
                 "--preset", "tiny", "--max-steps", "5", "--batch-size", "8", "--eval-every",
                 "0", "--no-tensorboard", "--threads", "1"]) == 0
    out[f"pretrain {name}"] = peak_mb()
print("RSS " + json.dumps(out))
"""


def test_peak_rss_does_not_grow_with_the_corpus(ws, tmp_path):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    sizes = {"1x": 10, "4x": 40}
    chars = {}
    for name, repeats in sizes.items():
        chars[name] = len(_big_corpus(tmp_path / f"{name}.txt", repeats).read_text(encoding="utf-8"))
    done = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(ws.tok), str(tmp_path), *sizes],
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    peaks = json.loads(done.stdout.split("RSS ", 1)[1])
    for stage in ("data build", "pretrain"):
        small, large = peaks[f"{stage} 1x"], peaks[f"{stage} 4x"]
        # proportional growth would add 3x the data-dependent part; allow 10% + 10 MB of noise
        assert large < small * 1.1 + 10, peaks
    SCALE.update({f"{k} ({chars[k[-2:]] / 1e6:.2f}M chars)": round(v) for k, v in peaks.items()})
