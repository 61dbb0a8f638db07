"""`hanlm study --pilot` (hanlm/study/pilot.py): the review model alone, scored on training
reviews outside the study's training set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_study import MICRO, make_shared_data

from hanlm import config
from hanlm.errors import HanlmError
from hanlm.study.config import StudyConfig
from hanlm.study.pilot import validation_split
from hanlm.study.run import run_study
from hanlm.study.workdir import WorkDir

PILOT = {**MICRO, "objectives": ["bert"], "continued": False, "full_nsmc": False,
         "nsmc_train": 24, "seeds": [1, 2], "pilot": True, "pilot_reviews": 10}


def _ids(path: Path) -> list[str]:
    return [line.split("\t", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()[1:]]


def test_the_validation_split_leaves_out_the_training_ids_and_is_fixed(tmp_path):
    source = tmp_path / "train.txt"
    source.write_text("id\tdocument\tlabel\n" + "".join(f"{i}\t리뷰 {i}\t{i % 2}\n"
                                                        for i in range(100)), encoding="utf-8")
    train = tmp_path / "study-train.txt"
    train.write_text("id\tdocument\tlabel\n" + "".join(f"{i}\t리뷰 {i}\t{i % 2}\n"
                                                        for i in range(0, 100, 2)), encoding="utf-8")
    first = validation_split(source, train, tmp_path / "a.txt", 20)
    again = validation_split(source, train, tmp_path / "b.txt", 20)
    assert first.read_bytes() == again.read_bytes()
    ids = _ids(first)
    assert len(set(ids)) == 20 and all(int(i) % 2 == 1 for i in ids)
    assert ids != sorted(ids, key=int)  # drawn, not the first 20
    with pytest.raises(HanlmError, match="only 50 training reviews"):
        validation_split(source, train, tmp_path / "c.txt", 51)


@pytest.mark.slow
def test_a_pilot_pretrains_the_review_model_only_and_scores_other_training_reviews(
        tmp_path, monkeypatch, capsys):
    root = make_shared_data(tmp_path / "data")
    monkeypatch.setenv("HANLM_SHARED_DATA", str(root))
    work = tmp_path / "work"
    assert run_study(StudyConfig(work_dir=str(work), **PILOT)) == 0
    record = json.loads((work / "pilot.json").read_text(encoding="utf-8"))
    review = record["models"]["review"]
    assert set(record["models"]) == {"review"}
    assert len(review["validation_accuracy"]) == 2 and review["n"] == 2
    assert [(p["steps"], p["max_len"]) for p in review["pretraining"]["phases"]] == [(2, 16),
                                                                                     (2, 32)]
    assert not any((work / name).exists() for name in ("model-general", "tokenizer-general",
                                                       "model-random", "results"))
    # The work directory can become a study's: it records the code that made its stages.
    assert WorkDir(work).source_file.is_file()
    validation, train = _ids(work / "validation.txt"), _ids(work / "nsmc" / "train-100pct.txt")
    assert len(validation) == 10 and len(train) == 24 and not set(validation) & set(train)
    assert set(validation) <= set(_ids(root / "nsmc" / "ratings_train.txt"))
    runs = sorted((work / "finetune").rglob("config.yaml"))
    assert len(runs) == 2
    assert {config.read_yaml(p)["dev"] for p in runs} == {str(work / "validation.txt")}
    assert "review: NSMC validation" in capsys.readouterr().out
    # A second pilot in the same work directory reuses every stage and run.
    timings = (work / "timings.json").read_text(encoding="utf-8")
    assert run_study(StudyConfig(work_dir=str(work), **PILOT)) == 0
    assert (work / "timings.json").read_text(encoding="utf-8") == timings
