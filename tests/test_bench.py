"""Smoke test of the benchmark code paths (bench/) on tiny sizes: the figures are not checked,
only that every system runs, every metric is computed and the report is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.flops import Dims, step_flops


def test_useful_flops_count_real_tokens_and_masked_positions_only():
    dims = Dims(layers=2, hidden=8, intermediate=32, vocab=100)
    lengths = np.array([10, 4])
    dense, useful = step_flops(dims, lengths, masked=2, width=10, head_positions=20)
    sparse, useful_again = step_flops(dims, lengths, masked=2, width=10, head_positions=2)
    assert useful == useful_again
    assert useful < sparse < dense
    unpadded, _ = step_flops(dims, np.array([10, 10]), masked=2, width=10, head_positions=2)
    assert unpadded == pytest.approx(3 * (20 * dims.per_token() + 2 * dims.attention(10) + 2 * dims.head_per_prediction()))


@pytest.mark.usefixtures("shared_data")
def test_pretrain_bench_runs_every_system_end_to_end(tmp_path):
    from bench import pretrain
    report = pretrain.main(["--quick", "--presets", "tiny", "--steps", "3", "--eval-every", "2",
                            "--reviews", "1500", "--vocab-size", "600", "--work", str(tmp_path / "work"),
                            "--out", str(tmp_path / "out"), "--lr", "1e-3"])
    saved = json.loads((tmp_path / "out" / "pretrain-quick.json").read_text())
    assert (tmp_path / "out" / "pretrain-quick.png").is_file()
    tiny = saved["presets"]["tiny"]
    assert list(tiny["systems"]) == ["strong", "strong-nodropout", "hanlm", "baseline"]
    for name, metrics in tiny["systems"].items():
        assert metrics["steps"] == 3 and metrics["real_tokens_per_second"] > 0
        assert 0 < metrics["useful_mfu"] and metrics["peak_rss_mb"] > 0
        assert metrics["ceiling_flops"] == tiny["ceiling_flops"][metrics["precision"]]  # MFU in its precision
        assert [e["step"] for e in tiny["raw"][name]["evals"]] == [0, 2, 3]
        assert tiny["raw"][name]["lr"] == 1e-3  # --lr reaches every system (the issue: the same lr)
    strong, bare, hanlm, typical = (tiny["systems"][k] for k in ("strong", "strong-nodropout", "hanlm", "baseline"))
    # the strong baselines: stock attention, hanlm's measured precision, BERT's dropout or hanlm's
    assert strong["attn_implementation"] == bare["attn_implementation"] == "sdpa"
    # measured once for both strong baselines; hanlm measures its own (the same where bf16 clearly
    # wins: mini and up; tiny's 128 wide step is close either way)
    assert strong["precision"] == bare["precision"] == tiny["trainer_precision"] and hanlm["precision"] in ("fp32", "bf16")
    assert (strong["dropout"], bare["dropout"], hanlm["dropout"]) == (0.1, 0.0, 0.0)
    assert typical["precision"] == "fp32" and typical["attn_implementation"] == "eager"
    assert "fp32" in hanlm["precision_reason"] and "fp32" in tiny["trainer_precision_reason"]  # the figures
    assert set(tiny["ceiling_flops"]) == {"fp32", "bf16"}
    # on hanlm's instances, dynamically padded: far less padding than the typical script's 128
    assert typical["padding_fraction"] > strong["padding_fraction"] > hanlm["padding_fraction"]
    assert list(report["presets"]["tiny"]["ratios_hanlm_over"]) == ["strong", "strong-nodropout", "baseline"]
    assert set(tiny["time_to_loss"]) == {"strong", "strong-nodropout", "baseline"}
    equal = tiny["equal_tokens"]  # hanlm's own run on the typical script's real tokens
    assert equal["hanlm_real_tokens"] > 0 and equal["baseline_real_tokens"] > 0
    assert equal["hanlm_steps"] >= 1 and np.isfinite(equal["hanlm_final_loss"])


def test_pretrain_bench_runs_a_chosen_ring_under_its_own_name(tmp_path):
    """--systems leaves systems out of the ring (hanlm always runs); the report is named after
    them, so it never replaces a full run's."""
    from bench import pretrain
    pretrain.main(["--quick", "--presets", "tiny", "--steps", "2", "--eval-every", "2", "--reviews", "1500",
                   "--vocab-size", "600", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"),
                   "--systems", "strong"])
    assert not (tmp_path / "out" / "pretrain-quick.json").exists()
    tiny = json.loads((tmp_path / "out" / "pretrain-quick-strong-hanlm.json").read_text())["presets"]["tiny"]
    assert list(tiny["systems"]) == ["strong", "hanlm"] and list(tiny["ratios_hanlm_over"]) == ["strong"]
    assert "equal_tokens" not in tiny  # that run matches the typical script's tokens, absent here


def test_strong_baseline_reads_hanlms_instances_as_dataset_rows(tiny_pretraining_data):
    from transformers import DataCollatorForLanguageModeling

    from bench.systems import HanlmInstances
    from hanlm.data.shards import ShardReader
    from hanlm.tokenizer import KoreanTokenizer

    tok = KoreanTokenizer.load(tiny_pretraining_data / "tokenizer")
    rows = HanlmInstances(str(tiny_pretraining_data), tok.special_ids)
    reader = ShardReader(tiny_pretraining_data, "train")
    assert len(rows) == len(reader) > 4
    sample, row = reader[3], rows[3]
    assert row["input_ids"] == sample.input_ids.tolist() and row["next_sentence_label"] == sample.nsp_label
    assert row["token_type_ids"].index(1) == sample.len_a and sum(row["attention_mask"]) == sample.input_ids.size
    assert [i for i, m in zip(row["input_ids"], row["special_tokens_mask"], strict=True) if m] == [
        tok.cls_id, tok.sep_id, tok.sep_id]
    batch = DataCollatorForLanguageModeling(tok.hf(), mlm_probability=0.15)([rows[i] for i in range(4)])
    width = max(len(rows[i]["input_ids"]) for i in range(4))
    assert batch["input_ids"].shape == (4, width) and batch["next_sentence_label"].shape == (4,)


def test_steps_for_tokens_is_the_first_step_that_reaches_them():
    from bench.pretrain import steps_for_tokens

    result = {"batches": [{"lengths": [10, 10]}, {"lengths": [5]}, {"lengths": [30]}]}
    assert [steps_for_tokens(result, t) for t in (1, 20, 21, 25, 26, 55)] == [1, 1, 2, 2, 3, 3]


def test_length_buckets_keep_every_sample_once_per_epoch_and_cut_padding():
    """The bench reads hanlm's batches back from `global_batch`; bucketing must stay a pure
    function of (seed, step) that visits each sample once per epoch."""
    from hanlm.data.batches import BatchSchedule, global_batch

    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 129, size=32 * 64)
    n, size = lengths.size, 32
    seen = np.concatenate([global_batch(s, BatchSchedule(size), n, 7, lengths=lengths, bucket_steps=16)[0] for s in range(64)])
    assert sorted(seen) == list(range(n))
    again = global_batch(37, BatchSchedule(size), n, 7, lengths=lengths, bucket_steps=16)[0]
    assert np.array_equal(again, seen[37 * size : 38 * size])

    def padding(bucket_steps):
        widths = [lengths[global_batch(s, BatchSchedule(size), n, 7, lengths=lengths, bucket_steps=bucket_steps)[0]].max()
                  for s in range(64)]
        return 1 - lengths.sum() / (size * sum(widths))

    assert padding(16) < padding(1) / 3


@pytest.mark.usefixtures("shared_data")
def test_finetune_bench_runs_both_systems_end_to_end(tmp_path, shared_data):
    from bench import finetune

    nsmc = tmp_path / "nsmc"
    nsmc.mkdir()
    for name in ("ratings_train.txt", "ratings_test.txt"):  # the files' first 1,000 reviews
        lines = (shared_data / "nsmc" / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (nsmc / name).write_text("".join(lines[:1001]), encoding="utf-8")
    report = finetune.main(["--quick", "--preset", "tiny", "--steps", "4", "--warmup", "1", "--eval-examples", "150",
                            "--vocab-size", "600", "--nsmc", str(nsmc), "--work", str(tmp_path / "work"),
                            "--out", str(tmp_path / "out")])
    saved = json.loads((tmp_path / "out" / "finetune-quick.json").read_text())
    for name in ("baseline", "hanlm"):
        metrics = saved["systems"][name]
        assert metrics["train_steps"] == 4 and metrics["train_samples_per_second"] > 0
        assert metrics["eval_examples"] == 150 and metrics["eval_samples_per_second"] > 0
        assert 0 < metrics["train_real_token_fraction"] <= 1 and metrics["peak_rss_mb"] > 0
        assert 0 <= metrics["accuracy"] <= 100
        assert len(saved["raw"][name]["batches"]["train"]["width"]) == 4  # one list per field
        assert len(saved["raw"][name]["segments"]["train"]["seconds"]) == 4
    # the strongest Trainer set-up: stock attention, hanlm's measured precision, length grouping
    baseline, hanlm = saved["systems"]["baseline"], saved["systems"]["hanlm"]
    assert baseline["attn_implementation"] == "sdpa" and baseline["precision"] == saved["spec"]["trainer_precision"]
    assert hanlm["precision"] in ("fp32", "bf16") and hanlm["eval_precision"] in ("fp32", "bf16")
    # (the Trainer groups lengths within mega-batches of up to 50 batches, a quarter of the data: none
    # in 4 steps, so the effect shows only in the bench's real runs)
    assert baseline["train_sampling"] == hanlm["train_sampling"] == "group_by_length"
    # hanlm sorts the lengths for inference, the Trainer predicts in the file's order
    assert hanlm["eval_real_token_fraction"] > baseline["eval_real_token_fraction"]
    assert set(report["ratios_hanlm_over_baseline"]) >= {"train_samples_per_second", "eval_samples_per_second"}
    # the model's 0.1 dropout: PyTorch's in the Trainer, hanlm's own on a CPU
    assert baseline["dropout_modules"] == ["Dropout"]
    assert hanlm["dropout_modules"] == (["Dropout"] if torch.cuda.is_available() else ["CpuDropout"])

    # --baseline torch-dropout: hanlm against itself with PyTorch's dropout, the one lever
    finetune.main(["--quick", "--preset", "tiny", "--steps", "2", "--warmup", "0", "--eval-examples", "20",
                   "--vocab-size", "600", "--nsmc", str(nsmc), "--work", str(tmp_path / "work"),
                   "--out", str(tmp_path / "out"), "--baseline", "torch-dropout"])
    lever = json.loads((tmp_path / "out" / "finetune-quick-vs-torch-dropout.json").read_text())["systems"]
    assert lever["baseline"]["dropout_modules"] == ["Dropout"] and lever["baseline"]["train_steps"] == 2
    assert lever["hanlm"]["dropout_modules"] == hanlm["dropout_modules"]


def test_optimizer_bench_times_both_adamw_implementations():
    from bench.optimizer import compare

    result = compare(vocab_size=500, hidden=32, layers=1, rounds=3, batch=(4, 8))
    assert set(result) == {"foreach", "fused"}
    assert all(r["optimizer_s"] > 0 and r["forward_backward_s"] > 0 for r in result.values())


def test_result_json_is_compact_and_round_trips(tmp_path):
    from bench.common import columns, write_json

    records = [{"seconds": 0.5, "lengths": [3, 4]}, {"seconds": 0.25, "lengths": [5]}]
    data = {"systems": {"a": {"rate": 1.5}}, "raw": columns(records), "empty": [], "none": None}
    assert data["raw"] == {"seconds": [0.5, 0.25], "lengths": [[3, 4], [5]]}
    write_json(tmp_path / "r.json", data)
    text = (tmp_path / "r.json").read_text(encoding="utf-8")
    assert json.loads(text) == data
    assert '"seconds": [0.5, 0.25]' in text and len(text.splitlines()) < 15


@pytest.mark.usefixtures("shared_data")
def test_equal_tokens_bench_runs_each_system_alone(tmp_path):
    from bench import equal_tokens

    out = tmp_path / "rows.jsonl"
    rows = equal_tokens.main(["baseline:2:1e-3:4", "hanlm:2:1e-3:4", "hanlm:t300:1e-3:4:3:1", "--preset", "tiny",
                              "--reviews", "1500", "--vocab-size", "600", "--baseline-pairs", "8",
                              "--heldout-rows", "16", "--work", str(tmp_path / "work"), "--out", str(out)])
    assert [r["run"] for r in rows[:2]] == ["baseline-2-0.001-4", "hanlm-2-0.001-4"]
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    for row in rows[:2]:
        assert [e[0] for e in row["evals"]] == [0, 1, 2] and row["evals"][0][1] == 0
        assert row["real_tokens"] == row["evals"][-1][1] > 0 and np.isfinite(row["final_loss"])
    # t300 with a ramp from 1 row over 3 steps: the fewest steps whose rows hold >= 300 real tokens
    ramped = rows[2]
    steps = ramped["evals"][-1][0]
    assert ramped["run"] == f"hanlm-{steps}-0.001-4-ramp3from1" and ramped["real_tokens"] >= 300
    from bench.systems import hanlm_batches
    from hanlm.train.pretrain import PretrainConfig

    (data,) = (tmp_path / "work").glob("data-*")
    cfg = PretrainConfig(data=str(data), out="-", batch_size=4, max_steps=steps, batch_ramp_steps=3,
                         batch_ramp_start=1)
    batches = hanlm_batches(cfg)
    assert [len(b["lengths"]) for b in batches[:4]] == [1, 2, 3, 4][: len(batches[:4])]
    seen = np.cumsum([sum(b["lengths"]) for b in batches])
    assert seen[-1] == ramped["real_tokens"] and (steps == 1 or seen[-2] < 300)
    # hanlm starts its MLM bias at the token frequencies (its default), the baseline at zeros
    (zeros,) = equal_tokens.main(["hanlm:2:1e-3:4", "--mlm-bias-init", "zeros", "--preset", "tiny", "--reviews",
                                  "1500", "--vocab-size", "600", "--baseline-pairs", "8", "--heldout-rows", "16",
                                  "--work", str(tmp_path / "work")])
    assert zeros["run"] == "hanlm-2-0.001-4-bias0"
    start = {r["run"]: r["evals"][0][2] for r in (rows[0], rows[1], zeros)}
    assert start["hanlm-2-0.001-4"] < min(start["baseline-2-0.001-4"], start["hanlm-2-0.001-4-bias0"]) - 0.5
    with pytest.raises(SystemExit):  # 3 x 4 baseline rows from 8 drawn examples
        equal_tokens.main(["baseline:3:1e-3:4", "--baseline-pairs", "8", "--work", str(tmp_path / "work")])


def test_equal_tokens_runs_are_parsed_and_bad_ones_named():
    import argparse

    from bench.equal_tokens import Run

    assert Run.parse("hanlm:41:5e-4:32") == Run("hanlm", 41, 5e-4, 32)
    assert Run.parse("baseline:150:1e-3:16").name(150) == "baseline-150-0.001-16"
    ramped = Run.parse("hanlm:t104393:5e-4:32:200:4")
    assert ramped == Run("hanlm", -104393, 5e-4, 32, 200, 4)
    assert ramped.overrides == {"batch_ramp_steps": 200, "batch_ramp_start": 4}
    for bad in ("hanlm:41:5e-4", "hf:41:5e-4:32", "hanlm:0:5e-4:32", "hanlm:41:fast:32",
                "baseline:t1000:5e-4:32", "baseline:41:5e-4:32:100:4", "hanlm:41:5e-4:32:100:4:1"):
        with pytest.raises(argparse.ArgumentTypeError, match=bad):
            Run.parse(bad)


def test_data_build_ratios_are_medians_of_within_pair_ratios():
    from bench.data_build import summarise

    def run(seconds, cpu, rss=100.0):
        return {"seconds": seconds, "cpu_seconds": cpu, "bytes": 2_000_000, "peak_rss_mb": rss,
                "peak_rss_children_mb": rss / 2, "fast_seconds": seconds / 2, "fast_cpu_seconds": cpu / 2}

    pairs = [{"bare": run(1.0, 2.0), "hanlm": run(2.0, 4.0)},       # 50%
             {"bare": run(3.0, 6.0, 300.0), "hanlm": run(4.0, 6.0)},  # 75% (a slow minute for both)
             {"bare": run(1.0, 2.0), "hanlm": run(1.25, 2.5, 90.0)}]  # 80%
    entry = summarise(pairs, reviews=10)
    assert entry["hanlm_over_bare_each"] == [0.5, 0.75, 0.8]
    assert entry["hanlm_over_bare"] == 0.75  # not 5 / 7.25 from the summed seconds
    assert entry["hanlm_over_bare_cpu"] == 0.8 and entry["bare_mb_per_second"] == 2.0
    assert entry["bare_peak_rss_mb"] == 300.0 and entry["hanlm_peak_rss_mb"] == 100.0
    assert entry["hanlm_over_bare_fast_each"] == [0.25, 0.375, 0.4] and entry["hanlm_over_bare_fast"] == 0.375


@pytest.mark.shared_data
def test_corpus_scale_bench_runs_end_to_end_on_a_prefix_of_both_sources(tmp_path, shared_data):
    from bench import corpus_scale

    report = corpus_scale.main(["--limit-mb", "0.4", "--sample-mb", "0.1", "--tokenizer-mb", "0.2",
                                "--vocab-size", "2000", "--shared", str(shared_data),
                                "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "data_build-corpus-scale-limit0.4mb.json").is_file()  # never the full run's file
    assert {p.name for p in (tmp_path / "work" / "prefix-0.4mb").iterdir()} == {
        "kowiki_text_AA.txt.gz", "kowiki_text_AB.txt.gz", "reviews.tsv.gz"}
    assert set(report["builds"]) == {"full-w1", "full-w2", "prefix0.25-w1", "prefix0.25-w2"}
    assert report["reads"]["full"]["bytes"] > 3 * report["reads"]["prefix0.25"]["bytes"] > 0
    for build in report["builds"].values():
        assert build["tokens"] > 0 and build["tokens_per_second"] > 0 and build["peak_rss_mb"] > 0
    assert report["builds"]["full-w2"]["peak_rss_children_mb"] > 0  # a worker ran and was counted
    assert report["builds"]["full-w1"]["workers_cpu_seconds"] == 0  # one worker = in the main process
    summary = report["summary"]
    assert summary["bare_threads_used"] < 1.5  # RAYON_NUM_THREADS=1 holds the Rust pool to one thread
    assert summary["full-w1_over_bare_per_core"] > 0 and summary["speedup_2_over_1_worker"] > 0
    assert [(r["cores"], r["corpus_gb"]) for r in report["extrapolation"]["rows"]] == [
        (16, 10), (16, 30), (64, 10), (64, 30)]


def test_corpus_scale_extrapolation_scales_workers_up_to_the_main_process():
    from bench.corpus_scale import extrapolate

    rows = extrapolate(2.0, 0.8, 100.0, 400.0, 100.0)["rows"]
    by = {(r["cores"], r["corpus_gb"]): r for r in rows}
    assert by[16, 10]["mb_per_second"] == pytest.approx(16 * 2.0 * 0.8)  # 25.6 MB/s, under the cap
    assert by[16, 10]["bound_by"] == "workers"
    assert by[16, 30]["hours"] == pytest.approx(30_000 / 25.6 / 3600)
    assert by[64, 10]["mb_per_second"] == 100.0 and by[64, 10]["bound_by"] == "main process"  # 102.4 > 100
    assert by[64, 30]["hours"] == pytest.approx(30_000 / 100.0 / 3600)
    assert by[64, 10]["peak_rss_gb"] == pytest.approx((400 + 64 * 100) / 1024)
    # a measured speedup above 2 (noise) is not extrapolated as superlinear
    assert extrapolate(2.0, 1.3, 1e9, 0, 0)["rows"][0]["mb_per_second"] == pytest.approx(32.0)


def test_corpus_scale_prefixes_end_at_a_document_boundary(tmp_path):
    import gzip

    from bench.corpus_scale import prefix_copy

    wiki, table = tmp_path / "wiki.txt.gz", tmp_path / "t.tsv.gz"
    doc = '<doc id="{}" url="u" title="t">\nt\n' + "가나다 " * 20 + "\n</doc>\n"
    wiki.write_bytes(gzip.compress("".join(doc.format(k) for k in range(5)).encode()))
    table.write_bytes(gzip.compress(("review_id\treview\n" + "1\t좋다\n" * 50).encode()))
    cut = gzip.decompress(prefix_copy(wiki, tmp_path / "a" / wiki.name, 10).read_bytes()).decode()
    assert cut == doc.format(0)  # the whole first document, not its first 10 bytes
    rows = gzip.decompress(prefix_copy(table, tmp_path / "a" / table.name, 30).read_bytes()).decode()
    assert rows.startswith("review_id\treview\n") and rows.endswith("\n") and rows.count("\n") == 3  # 17 + 9 + 9 >= 30 bytes


def test_time_to_loss_says_when_hanlm_starts_below_the_baselines_final_loss():
    from bench.pretrain import time_to_loss

    def result(losses, seconds):
        return {"batches": [{"lengths": [10, 20]}] * 4, "evals": [
            {"step": 2 * k, "seconds": s, "all": loss} for k, (loss, s) in enumerate(zip(losses, seconds, strict=True))]}

    base = result([10.4, 9.0, 8.4], [0.0, 10.0, 20.0])
    zeros = time_to_loss(base, result([10.4, 8.4, 8.0], [0.0, 2.0, 4.0]))
    assert zeros["speedup"] == pytest.approx(10.0) and not zeros["hanlm_below_target_at_step_0"]
    assert zeros["hanlm_loss_at_baseline_tokens"] == 8.0 and zeros["baseline_real_tokens"] == 120
    unigram = time_to_loss(base, result([8.0, 7.9, 7.8], [0.0, 2.0, 4.0]))
    assert unigram["hanlm_seconds"] == 0.0 and unigram["speedup"] is None
    assert unigram["hanlm_below_target_at_step_0"]


def test_step_overhead_bench_checks_both_collators_agree_and_reports_ratios(tiny_pretraining_data, tmp_path):
    from bench import step_overhead

    out = tmp_path / "overhead.json"
    step_overhead.main(["--data", str(tiny_pretraining_data), "--batch-size", "4", "--batches", "2",
                        "--rounds", "2", "--out", str(out)])
    result = json.loads(out.read_text())
    assert set(result["ms_per_batch"]) == {"collate before", "collate now", "accuracy argmax (before)",
                                           "accuracy amax (now)", "model step"}
    assert all(v > 0 for v in result["ms_per_batch"].values())
    assert result["step_speedup"] > 0


@pytest.mark.slow
def test_the_gpu_check_runs_on_the_cpu_as_a_dry_run(tmp_path, shared_data):
    """scripts/gpu_check.sh --dry-run: the GPU check's code path in CI, where no GPU is."""
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHON": sys.executable, "HANLM_SHARED_DATA": str(shared_data)}
    result = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run", "--work",
                             str(tmp_path / "work"), "--output", str(out)],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    speed = report["pretraining"]
    assert speed["huggingface"]["real_tokens_per_second"] > 0
    assert speed["hanlm"]["real_tokens_per_second"] > 0 and speed["speedup"] > 0
    assert report["finetuning"]["steps"] == 3
    assert report["gpu_tests_rc"] == 0, report["gpu_tests"]


# Python packages that hanlm declares but the GPU machines' stock PyTorch image lacks (their
# package list: /work/.library/device/KINDS.md), where nothing can be installed.
NOT_ON_THE_GPU_IMAGE = ("seqeval", "kiwipiepy")


def test_every_module_imports_without_the_packages_a_stock_gpu_image_lacks(tmp_path):
    """The GPU check imports the pretraining, export and fine-tuning code on an image without
    seqeval and kiwipiepy: only KLUE-NER scoring and morpheme pre-tokenization may need them,
    when they run."""
    for name in NOT_ON_THE_GPU_IMAGE:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('no {name} here')\n")
    script = (
        "import importlib, pkgutil, hanlm, bench\n"
        "for pkg in (hanlm, bench):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if not m.name.endswith('__main__'):\n"
        "            importlib.import_module(m.name)\n"
        "print('imported')\n")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and "imported" in result.stdout, result.stderr[-3000:]
