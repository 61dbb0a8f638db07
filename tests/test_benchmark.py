"""`hanlm benchmark` over a fixture data folder laid out as ../shared/data: a row per model, the
absent task reported as such, mean ± std over seeds from the runs' own test scores, finished
runs reused; the plan (data discovery, settings) without a model; and one shared-data run."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from tasks_fixtures import build_tiny_model, write_klue_nli, write_nsmc

from hanlm.benchmark.config import BenchmarkConfig
from hanlm.benchmark.plan import find_data, make_plan, read_hparams, select_tasks, task_settings
from hanlm.benchmark.report import mean_std
from hanlm.benchmark.run import model_labels, run_benchmark
from hanlm.cli import main
from hanlm.errors import HanlmError

TASKS = "nsmc,klue-nli,kornli"  # an official train/test pair, a dev file to split, no data


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("models")
    return [build_tiny_model(root / "bert-a", seed=0), build_tiny_model(root / "bert-b", seed=1)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_nsmc(root / "nsmc")  # ratings_train.txt + ratings_test.txt
    write_klue_nli(root / "klue")  # klue-nli-v1.1_dev.json only
    return root


@pytest.fixture(scope="module")
def benchmark(models, data_dir, tmp_path_factory) -> tuple[Path, dict, int]:
    out = tmp_path_factory.mktemp("bench")
    code = main(["benchmark", "--model", str(models[0]), "--model", str(models[1]),
                 "--tasks", TASKS, "--data", str(data_dir), "--out", str(out), "--seeds", "2",
                 "--max-steps", "2"])
    return out, json.loads((out / "quick" / "benchmark.json").read_text()), code


def _config(models, data_dir, out, **kw) -> BenchmarkConfig:
    return BenchmarkConfig(model=[str(m) for m in models], tasks=TASKS, data=str(data_dir),
                           out=str(out), seeds=2, max_steps=2, plot=False, **kw)


def test_table_has_a_row_per_model_and_says_no_data(benchmark, data_dir):
    out, report, code = benchmark
    assert code == 0
    md = (out / "quick" / "benchmark.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| bert-")]
    assert [r.split("|")[1].strip() for r in rows[:2]] == ["bert-a", "bert-b"]
    header = next(line for line in md.splitlines() if line.startswith("| model |"))
    assert header.split("|")[2:5] == [" nsmc (accuracy) ", " klue-nli (accuracy) ",
                                      " kornli (accuracy) "]
    looked = f"no data: looked for {data_dir / 'kornli' / 'xnli.dev.ko.tsv'}"
    for row in rows[:2]:
        assert row.split("|")[4].strip() == looked
    assert report["table"]["bert-a"]["kornli"]["status"] == "no data"
    kornli = next(t for t in report["tasks"] if t["task"] == "kornli")
    assert str(data_dir / "kornli" / "multinli.train.ko.tsv") in kornli["looked_for"]
    assert (out / "quick" / "benchmark.png").stat().st_size > 0


def test_official_pair_and_split_dev_are_scored_on_their_tests(benchmark, data_dir):
    out, report, _ = benchmark
    tasks = {t["task"]: t for t in report["tasks"]}
    assert tasks["nsmc"]["official_train"] and tasks["nsmc"]["train"].endswith("ratings_train.txt")
    assert tasks["nsmc"]["test_examples"] == 14  # all of ratings_test.txt (40 rows, every 3rd)
    assert not tasks["klue-nli"]["official_train"]
    run = out / "quick" / "runs" / "bert-a"
    nsmc = json.loads((run / "nsmc" / "seed-42" / "test.json").read_text())
    assert nsmc["split_dev"] is None and nsmc["data"].endswith("ratings_test.txt")
    nli = json.loads((run / "klue-nli" / "seed-42" / "test.json").read_text())
    assert nli["split_dev"] == "42:0.1"  # the held-out part of the one file, never trained on
    config = (run / "klue-nli" / "seed-42" / "config.yaml").read_text()
    assert "eval_every: 0" in config  # no selection on the test
    assert not (run / "nsmc" / "seed-42" / "model").exists()  # only the scores are kept
    assert all(r["cpu_seconds"] > 0 and r["wall_seconds"] > 0 for r in report["runs"])


def test_mean_and_std_over_seeds(benchmark):
    out, report, _ = benchmark
    for model in ("bert-a", "bert-b"):
        for task in ("nsmc", "klue-nli"):
            values = [json.loads((out / "quick" / "runs" / model / task / f"seed-{s}" /
                                  "test.json").read_text())["metrics"]["accuracy"]
                      for s in (42, 43)]
            cell = report["table"][model][task]
            assert cell["values"] == values and cell["seeds"] == [42, 43]
            assert cell["mean"] == pytest.approx(sum(values) / 2)
            assert cell["std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
            assert cell["text"] == f"{cell['mean']:.2f} ± {cell['std']:.2f}"
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([5.0]) == (5.0, None)


def test_rerun_reuses_finished_runs_and_redoes_changed_ones(benchmark, models, data_dir):
    out, first, _ = benchmark
    assert first["reused"] == 0 and len(first["runs"]) == 8
    runs = out / "quick" / "runs"
    stamp = (runs / "bert-b" / "nsmc" / "seed-43" / "test.json").stat().st_mtime_ns
    # An interrupted run has no inputs.json: it is done again, and nothing else is.
    (runs / "bert-a" / "klue-nli" / "seed-43" / "inputs.json").unlink()
    assert run_benchmark(_config(models, data_dir, out)) == 0
    again = json.loads((out / "quick" / "benchmark.json").read_text())
    redone = [(r["model"], r["task"], r["seed"]) for r in again["runs"] if not r["cached"]]
    assert redone == [("bert-a", "klue-nli", 43)]
    assert (runs / "bert-b" / "nsmc" / "seed-43" / "test.json").stat().st_mtime_ns == stamp
    assert again["table"] == first["table"]  # same settings, same seed: same scores
    # Another setting is another run.
    assert run_benchmark(_config(models, data_dir, out, eval_limit=3)) == 0
    changed = json.loads((out / "quick" / "benchmark.json").read_text())
    assert changed["reused"] == 0
    assert {r["test_examples"] for r in changed["runs"] if r["task"] == "nsmc"} == {3}


# ------------------------------------------------------------------------------ the plan


def test_data_discovery_prefers_an_official_train_file(tmp_path):
    hparams = read_hparams(None)
    (tmp_path / "klue-ynat").mkdir()
    dev = tmp_path / "klue-ynat" / "ynat_dev.csv"
    dev.write_text("guid,title,label,label_name\n")
    found, looked, minimal = find_data(hparams, "klue-ynat", tmp_path)
    assert found is not None and found.train is None and found.test == dev
    assert dev in minimal and tmp_path / "klue-ynat" / "ynat_train_labeled_part.csv" in looked
    train = tmp_path / "klue-ynat" / "ynat_train_labeled_part.csv"
    train.write_text("dacon_index,title,label,label_name\n")
    found, _, _ = find_data(hparams, "klue-ynat", tmp_path)
    assert found is not None and found.train == train and found.test == dev and found.official
    assert find_data(hparams, "klue-mrc", tmp_path)[0] is None


def test_every_task_of_the_registry_is_benchmarked_except_csv():
    from hanlm.tasks.registry import TASKS

    assert set(select_tasks("all", read_hparams(None))) == set(TASKS) - {"csv"}


def test_settings_caps_lower_and_never_raise():
    hparams = read_hparams(None)
    quick = task_settings(hparams, "nsmc", "quick")
    capped = task_settings(hparams, "nsmc", "quick",
                           {"train_limit": 10, "eval_limit": 10 ** 9, "max_steps": 3})
    assert (capped.train_limit, capped.eval_limit, capped.max_steps) == (10, quick.eval_limit, 3)
    korquad = task_settings(hparams, "korquad", "quick")
    assert korquad.max_len > quick.max_len  # a task's own override


def test_bad_requests_are_one_line_errors(tmp_path, models):
    with pytest.raises(HanlmError, match="unknown csv"):
        select_tasks("nsmc,csv", read_hparams(None))
    with pytest.raises(HanlmError, match="data folder not found"):
        make_plan(tasks="all", budget="quick", seeds=None, data=str(tmp_path / "none"),
                  hparams_path=None)
    with pytest.raises(HanlmError, match="no config.json"):
        model_labels([str(tmp_path)])
    bad = tmp_path / "h.yaml"
    bad.write_text("split_dev: '1:0.1'\nbudgets: {}\ntasks: {}\n")
    with pytest.raises(HanlmError, match="quick"):
        read_hparams(bad)


def test_models_with_one_name_get_their_parent_in_the_label(tmp_path, models):
    import shutil

    for parent in ("run-a", "run-b"):
        shutil.copytree(models[0], tmp_path / parent / "model")
    labels = [label for label, _ in model_labels([str(tmp_path / "run-a" / "model"),
                                                  str(tmp_path / "run-b" / "model")])]
    assert labels == ["run-a-model", "run-b-model"]


# ------------------------------------------------------------------------------ real data


@pytest.mark.shared_data
def test_quick_budget_on_real_klue_sts(shared_data, models, tmp_path):
    """The quick budget on KLUE-STS (dev file only: split 42:0.1, the held-out 52 pairs are the
    test), cut to a few steps: the random tiny model's figure is a smoke check, not a result."""
    code = main(["benchmark", "--model", str(models[0]), "--tasks", "klue-sts", "--data",
                 str(shared_data), "--out", str(tmp_path), "--budget", "quick", "--max-steps", "4",
                 "--limit", "200", "--no-plot"])
    assert code == 0
    report = json.loads((tmp_path / "quick" / "benchmark.json").read_text())
    (task,) = report["tasks"]
    assert task["test"] == str(shared_data / "klue" / "klue-sts-v1.1_dev.json")
    assert not task["official_train"] and task["test_examples"] == 52
    assert task["train_examples"] == 200
    cell = report["table"]["bert-a"]["klue-sts"]
    assert cell["status"] == "ok" and set(cell["metrics"]) >= {"pearsonr", "f1"}
    assert statistics.fmean(cell["values"]) == cell["mean"]
