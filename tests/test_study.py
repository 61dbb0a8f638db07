"""The domain study: corpus builder, TF-IDF baseline, and the whole study on a micro plan."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest
import tasks_fixtures as fx
from safetensors.torch import load_file, save_file

from hanlm import config
from hanlm.errors import HanlmError
from hanlm.study import cache, stages
from hanlm.study import corpora as corpora_lib
from hanlm.study.baselines import run_baseline
from hanlm.study.config import MODES, StudyConfig, mode_file
from hanlm.study.corpora import Deduper, Sources, build_corpora, take_chars, text_key
from hanlm.study.finetune import finetune_config, task_inputs
from hanlm.study.full_nsmc import paired
from hanlm.study.plan import (
    TIMED_MAX_STEPS,
    RunSpec,
    full_nsmc_specs,
    model_names,
    pretrain_phases,
    resolve,
    run_specs,
)
from hanlm.study.report import goals_text, table_markdown
from hanlm.study.run import run_study
from hanlm.study.summary import goals, objectives_text, summarize
from hanlm.study.workdir import WorkDir
from hanlm.tasks.base import ReadOptions
from hanlm.tasks.registry import get_task

# A test review (id 1000 in the NSMC fixture's test file) and texts around it.
TEST_REVIEW = fx.sentiment_rows()[0][0]  # "영화가 정말 좋다", id 1000 in ratings_test.txt
LONG_EVAL = "김연아는 2010년 밴쿠버 동계 올림픽에서 금메달을 땄다."  # added to KLUE-NER (>= 16 key chars)


def _reviews_tsv(rows: list[tuple[int, int, str]]) -> bytes:
    lines = ["review_id\tmovie_id\trating\tdate\treview"]
    lines += [f"{rid}\t{movie}\t10\t20.01.01\t{text}" for rid, movie, text in rows]
    return ("\n".join(lines) + "\n").encode()


REVIEWS = [
    (1000, 1, "이 리뷰는 테스트 세트에 있다"),  # id in the test file: excluded by id
    (2001, 1, "영화가  정말 좋다!"),  # same text as a test review, other id: excluded by text
    (2002, 1, "배우들의 연기가 훌륭했고 음악도 좋았다"),
    (2003, 2, "배우들의 연기가 훌륭했고 음악도 좋았다"),  # a repeat: dropped
    (2004, 2, "지루해서 중간에 잠들었다 다시는 안 본다"),
    (2005, 3, "가족과 함께 보기 좋은 따뜻한 영화입니다"),
    (2006, 3, f"{LONG_EVAL} 그리고 영화를 봤다"),  # contains a KLUE-NER text
    (2007, 4, "스토리가 뻔하지만 볼만했다 킬링타임용으로 추천"),
    (2008, 4, "원작 소설을 먼저 읽었는데 영화가 더 낫다"),
] + [(3000 + k, 5 + k % 4, f"{k}번째로 다시 봤는데 {word} 장면이 여전히 기억에 남는다")
     for k, word in enumerate(["첫", "마지막", "전투", "이별", "재회", "추격", "고백", "결혼",
                               "반전", "눈물", "웃음", "음악"])]

WIKI = """<doc id="1" url="x" title="서울">
서울

서울은 대한민국의 수도이다. 한강이 서울을 가로지른다. 김연아는 2010년 밴쿠버 동계 올림픽에서 금메달을 땄다.
서울에는 많은 사람이 산다.
</doc>
<doc id="2" url="x" title="부산">
부산

부산은 항구 도시이다. 해운대 해수욕장이 유명하다.
부산 국제 영화제는 매년 가을에 열린다.
</doc>
<doc id="3" url="x" title="대전">
대전

대전은 과학 도시이다. 대전에는 연구소가 많다. 엑스포가 열렸던 도시이다.
</doc>
""" + "".join(f"""<doc id="{10 + k}" url="x" title="도시{k}">
도시{k}

도시{k}는 {k}번째로 큰 도시이다. 이 도시의 인구는 {k}만 명이다.
도시{k}에는 오래된 시장과 새로운 공원이 함께 있다.
</doc>
""" for k in range(8))


def make_shared_data(root: Path) -> Path:
    """../shared/data in miniature: the files the study reads, in their original formats."""
    fx.write_nsmc(root / "nsmc")
    fx.write_klue_nli(root / "klue")
    ner = fx.ner_tsv([*fx.NER, (LONG_EVAL, [(0, 3, "PS")])])
    (root / "klue" / "klue-ner-v1.1_dev.tsv").write_text(ner, encoding="utf-8")
    fx.write_klue_re(root / "klue-re")
    (root / "nsmc-raw").mkdir(parents=True)
    (root / "nsmc-raw" / "reviews.tsv.gz").write_bytes(gzip.compress(_reviews_tsv(REVIEWS)))
    (root / "kowiki").mkdir()
    (root / "kowiki" / "kowiki_text_AA.txt.gz").write_bytes(gzip.compress(WIKI.encode()))
    return root


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]


# ------------------------------------------------------------------------------ corpora


def test_text_key_ignores_spacing_punctuation_and_case():
    assert text_key("영화가  정말 좋다!") == text_key("영화가 정말 좋다") == "영화가정말좋다"
    assert text_key("ABC 1.5") == text_key("abc15")


def test_deduper_drops_evaluation_texts_contained_texts_and_repeats():
    dedup = Deduper(["영화가 정말 좋다", LONG_EVAL])
    assert not dedup.keep("영화가 정말, 좋다")  # equal key
    assert not dedup.keep(f"어제 {LONG_EVAL} 라고 들었다")  # contains a long evaluation text
    assert dedup.keep("영화가 정말 좋다고 한다")  # contains a short one: kept (equality only)
    assert not dedup.keep("영화가 정말 좋다고 한다")  # repeat
    assert dedup.stats.evaluation == 2 and dedup.stats.repeated == 1


def test_take_chars_is_exact_and_refuses_a_short_source():
    docs = [["가나다라", "마바"], ["사아자"]]
    assert take_chars(docs, 7, "x") == [["가나다라", "마바"], ["사"]]
    with pytest.raises(HanlmError, match="only 9 characters"):
        take_chars(docs, 10, "x")


def test_corpora_have_equal_size_and_no_evaluation_text(tmp_path):
    root = make_shared_data(tmp_path / "data")
    report = build_corpora(Sources(root), tmp_path / "out", 120, seed=0, re_share=0.3)
    review, general = tmp_path / "out" / "review.txt", tmp_path / "out" / "general.txt"
    for path in (review, general):
        assert sum(len(line) for line in _lines(path)) == 120
    assert report["corpora"]["review"]["chars"] == report["corpora"]["general"]["chars"] == 120
    texts = corpora_lib.evaluation_texts(Sources(root))
    eval_keys = {text_key(t) for t in texts}
    for path in (review, general):
        for line in _lines(path):
            assert text_key(line) not in eval_keys
            assert text_key(LONG_EVAL) not in text_key(line)
    reviews = review.read_text(encoding="utf-8")
    assert "테스트 세트에 있다" not in reviews  # id 1000 is in ratings_test.txt
    assert reviews.count("배우들의 연기가 훌륭했고") <= 1
    dropped = report["corpora"]["review"]["dropped"]
    assert dropped["test_ids"] == 1 and dropped["evaluation"] == 2 and dropped["repeated"] == 1
    assert report["corpora"]["general"]["sources"]["klue_re"] > 0


def test_corpora_refuse_a_target_beyond_the_source(tmp_path):
    root = make_shared_data(tmp_path / "data")
    with pytest.raises(HanlmError, match="review corpus has only"):
        build_corpora(Sources(root), tmp_path / "out", 10_000)


# ------------------------------------------------------------------------------ baseline


def test_tfidf_baseline_learns_the_fixtures(tmp_path):
    nsmc = get_task("nsmc")
    files = fx.write_nsmc(tmp_path)
    train = nsmc.read(files["train"], ReadOptions())
    test = nsmc.read(files["dev"], ReadOptions())
    assert run_baseline(nsmc, train, test)["accuracy"] == 100.0
    ner = get_task("klue-ner")
    examples = ner.read(fx.write_klue_ner(tmp_path)["train"], ReadOptions())
    scores = run_baseline(ner, examples, examples)
    assert scores["entity_f1"] > 50
    nli = get_task("klue-nli")
    examples = nli.read(fx.write_klue_nli(tmp_path)["train"], ReadOptions())
    assert 0 <= run_baseline(nli, examples, examples)["accuracy"] <= 100


def test_klue_runs_fine_tune_at_their_own_learning_rate_and_nsmc_at_its_own(tmp_path):
    data = make_shared_data(tmp_path / "data")
    cfg = StudyConfig(finetune_lr=5e-4, klue_finetune_lr=2e-3, klue_split="1:0.5")
    sources, files = Sources(data), {"100pct": data / "nsmc" / "ratings_train.txt",
                                     "test": data / "nsmc" / "ratings_test.txt"}
    rates = {}
    for task in ("nsmc", "klue-nli", "klue-ner"):
        spec = RunSpec("review", task, 1.0, 1)
        inputs = task_inputs(cfg, sources, files, spec)
        run = finetune_config(cfg, spec, tmp_path / "model", inputs, tmp_path / task)
        rates[task] = run.optim.lr
    assert rates == {"nsmc": 5e-4, "klue-nli": 2e-3, "klue-ner": 2e-3}


# ------------------------------------------------------------------------------ the study


def test_quick_plan_resolves_overrides():
    cfg = resolve(StudyConfig(quick=True, preset="mini", seeds=[3, 4])).cfg
    assert cfg.mode == "quick" and cfg.preset == "mini" and cfg.seeds == [3, 4]
    assert cfg.target_chars == 2_000_000  # the quick default
    assert len(run_specs(cfg)) == 2 * 4 * (3 + 2)  # review, general, continued, random


def test_a_setting_given_with_quick_wins_even_when_it_equals_the_default():
    assert resolve(StudyConfig(quick=True)).cfg.seeds == [1]
    assert resolve(StudyConfig(quick=True, seeds=[1, 2, 3])).cfg.seeds == [1, 2, 3]
    from_flags = config.build(StudyConfig, {"quick": "true", "seeds": ["1", "2", "3"]})
    assert resolve(from_flags).cfg.seeds == [1, 2, 3]
    changed = dataclasses.replace(StudyConfig(quick=True), seeds=[2])
    assert changed.seeds == [2] and changed.target_chars == 2_000_000


def test_pretrain_phases_keep_the_tokens_per_step_and_the_step_budget():
    cfg = resolve(StudyConfig()).cfg
    short, long = pretrain_phases(cfg)
    assert short.max_len * short.batch_size == long.max_len * long.batch_size
    assert short.steps + long.steps == cfg.pretrain_steps and short.steps == 5000
    assert long.init_from == short.suffix and short.init_from is None
    assert len(pretrain_phases(resolve(StudyConfig(short_len=0)).cfg)) == 1
    assert len(pretrain_phases(resolve(StudyConfig(short_len=128)).cfg)) == 1
    with pytest.raises(HanlmError, match="short-share"):
        resolve(StudyConfig(short_share=1.5))


def test_results_go_under_the_work_dir_unless_given(tmp_path):
    assert resolve(StudyConfig(work_dir=str(tmp_path))).results == tmp_path / "results"
    assert resolve(StudyConfig()).results == Path("study-work") / "default" / "results"
    assert resolve(StudyConfig(quick=True)).work.root == Path("study-work") / "quick"
    given = resolve(StudyConfig(work_dir=str(tmp_path), results=str(tmp_path / "r")))
    assert given.results == tmp_path / "r"


def test_a_work_dir_made_by_other_code_is_reused_and_said_so(tmp_path, monkeypatch, caplog):
    work = WorkDir(tmp_path / "work")
    work.root.mkdir()
    first = cache.source_record(work)
    assert first["work_dir_made_by"] == first["this_invocation"] == cache.source_fingerprint()
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    monkeypatch.setattr(cache, "source_fingerprint", lambda: "0" * 64)
    second = cache.source_record(work)
    assert second == {"work_dir_made_by": first["this_invocation"], "this_invocation": "0" * 64}
    assert "made by other hanlm code" in caplog.text


def _started(cfg: StudyConfig) -> tuple[WorkDir, list[cache.Stage]]:
    """A work directory in which every stage of `cfg` was started (outputs: one file each)."""
    study = resolve(cfg)
    stage_list = stages.stage_list(study)
    records = {}
    for stage in stage_list:
        for out in stage.outputs:
            out.mkdir(parents=True, exist_ok=True)
            (out / "part").write_text("x")
        records[stage.name] = cache.cache_key(stage.settings)
    study.work.stages_file.write_text(json.dumps(records))
    return study.work, stage_list


def _stale(cfg: StudyConfig) -> set[str]:
    study = resolve(cfg)
    records = json.loads(study.work.stages_file.read_text(encoding="utf-8"))
    return set(cache.stale_stages(stages.stage_list(study), records))


def test_each_stage_is_keyed_by_the_settings_it_reads(tmp_path):
    base = dict(quick=True, work_dir=str(tmp_path / "work"), data=str(tmp_path))
    _started(StudyConfig(**base))
    unkeyed = dict(finetune_lr=1e-4, finetune_epochs=3.0, seeds=[5], klue_split="1:0.5",
                      klue_limit=10, finetune_dropout=0.1, keep_models=True,
                      full_nsmc_baseline=False, pretrain_minutes=1.0, results="elsewhere")
    assert _stale(StudyConfig(**base, **unkeyed)) == set()
    pretraining = {"pretrain/review-short", "pretrain/review", "export/review-short",
                   "export/review", "random-init", "pretrain/general-short", "pretrain/general",
                   "export/general-short", "export/general"}
    # The quick study continues the general model: downstream of it, and of its own lr alone.
    continued = {"pretrain/continued", "export/continued"}
    assert _stale(StudyConfig(**base, pretrain_lr=1e-3)) == pretraining | continued
    assert _stale(StudyConfig(**base, continued_lr=1e-4)) == continued
    assert _stale(StudyConfig(**base, nsmc_test=10)) == {"task files"}
    assert _stale(StudyConfig(**base, vocab_size=300)) == {
        "tokenizer/review", "tokenizer/general", "data/review-short", "data/review",
        "data/general-short", "data/general", "data/continued", *pretraining, *continued}


def test_stages_made_with_other_settings_are_refused_or_redone_with_overwrite(tmp_path):
    base = dict(quick=True, work_dir=str(tmp_path / "work"), data=str(tmp_path))
    work, _ = _started(StudyConfig(**base))
    changed = resolve(StudyConfig(**base, nsmc_test=10))
    with pytest.raises(HanlmError, match=r"task files \(nsmc_test\).*--overwrite"):
        cache.check_work_dir(work, stages.stage_list(changed), overwrite=False)
    assert (work.nsmc / "part").is_file()
    cache.check_work_dir(work, stages.stage_list(changed), overwrite=True)
    assert not work.nsmc.exists() and (work.pretrain("review", "") / "part").is_file()
    assert "task files" not in json.loads(work.stages_file.read_text(encoding="utf-8"))


def test_an_older_study_s_work_dir_is_refused_unless_overwritten(tmp_path):
    study = resolve(StudyConfig(quick=True, work_dir=str(tmp_path / "work")))
    study.work.root.mkdir()
    (study.work.root / "plan.json").write_text("{}")
    stage_list = stages.stage_list(study)
    with pytest.raises(HanlmError, match="older hanlm code.*--overwrite"):
        cache.check_work_dir(study.work, stage_list, overwrite=False)
    cache.check_work_dir(study.work, stage_list, overwrite=True)
    assert not (study.work.root / "plan.json").exists() and study.work.stages_file.is_file()
    other = WorkDir(tmp_path / "other")
    other.root.mkdir()
    (other.root / "notes.txt").write_text("mine")
    with pytest.raises(HanlmError, match="not a study work directory"):
        cache.check_work_dir(other, stage_list, overwrite=True)
    assert (other.root / "notes.txt").is_file()


def test_the_pretraining_mask_rate_reaches_the_pretraining_run(tmp_path, monkeypatch):
    from hanlm.train import pretrain as pretrain_module

    seen = []
    monkeypatch.setattr(pretrain_module, "pretrain", lambda cfg: seen.append(cfg))
    study = resolve(StudyConfig(quick=True, work_dir=str(tmp_path), pretrain_mlm_probability=0.2))
    stage = next(s for s in stages.stage_list(study) if s.name == "pretrain/review-short")
    cache.run_stage(stage, study.work, cache.Timings(tmp_path / "timings.json"))
    assert seen[0].masking.mlm_probability == 0.2


def test_kiwi_pre_tokenization_reaches_the_tokenizers_and_is_keyed(tmp_path, monkeypatch,
                                                                   caplog):
    import hanlm.tokenizer as tokenizer_module
    from hanlm.study.plan import log_plan

    seen = []
    monkeypatch.setattr(tokenizer_module, "train_tokenizer", lambda cfg: seen.append(cfg))
    base = dict(quick=True, work_dir=str(tmp_path / "work"), data=str(tmp_path))
    _, plain = _started(StudyConfig(**base))
    tokenizer_stage = next(s for s in plain if s.name == "tokenizer/review")
    assert "pretokenize" not in cache.cache_key(tokenizer_stage.settings)  # as before it existed
    assert _stale(StudyConfig(**base, pretokenize="kiwi")) >= {"tokenizer/review",
                                                               "data/review", "pretrain/review"}
    study = resolve(StudyConfig(**base, pretokenize="kiwi"))
    stage = next(s for s in stages.stage_list(study) if s.name == "tokenizer/general")
    cache.run_stage(stage, study.work, cache.Timings(tmp_path / "timings.json"))
    assert [c.pretokenize for c in seen] == ["kiwi"]
    with caplog.at_level("INFO", logger="hanlm.study.plan"):
        log_plan(study)
    assert "kiwi morphemes" in caplog.text


# ------------------------------------------------------------------------------ objectives


def test_objectives_are_parsed_and_checked():
    assert resolve(StudyConfig()).cfg.objectives == ["bert"]
    cfg = resolve(StudyConfig(objectives=["bert,electra", "mlm", "bert"])).cfg
    assert cfg.objectives == ["bert", "electra", "mlm"]
    assert model_names(cfg) == ["review", "general", "review-electra", "general-electra",
                                "review-mlm", "general-mlm", "random"]
    with pytest.raises(HanlmError, match="--objectives: nsp"):
        resolve(StudyConfig(objectives=["nsp"]))


def test_one_pretraining_per_corpus_and_objective_and_one_packed_data_build(tmp_path):
    study = resolve(StudyConfig(quick=True, work_dir=str(tmp_path),
                                objectives=["bert", "mlm", "electra"]))
    by_name = {s.name: s for s in stages.stage_list(study)}
    for corpus in ("review", "general"):
        for phase in ("-short", ""):
            pretrains = {f"pretrain/{corpus}{phase}", f"pretrain/{corpus}-mlm{phase}"}
            if not phase:  # ELECTRA's one phase (`pretrain_phases`)
                pretrains.add(f"pretrain/{corpus}-electra")
            assert {n for n in by_name if n.startswith(f"pretrain/{corpus}")
                    and n.endswith(phase) and (phase or not n.endswith("-short"))} == pretrains
            data = {n for n in by_name if n.startswith(f"data/{corpus}") and n.endswith(phase)
                    and (phase or not n.endswith("-short"))}
            assert data == {f"data/{corpus}{phase}", f"data/{corpus}-packed{phase}"}
            # mlm and electra read the one packed build; bert its NSP pairs.
            assert f"data/{corpus}-packed{phase}" in by_name[f"pretrain/{corpus}-mlm{phase}"].after
            assert f"data/{corpus}-packed" in by_name[f"pretrain/{corpus}-electra"].after
            assert f"data/{corpus}{phase}" in by_name[f"pretrain/{corpus}{phase}"].after
    assert by_name["data/review-packed"].settings.kind == "packed"
    assert by_name["pretrain/review-electra"].done == (
        study.work.pretrain("review-electra", "") / "final_metrics.json")
    assert [n for n in by_name if n.startswith("tokenizer/")] == ["tokenizer/review",
                                                                   "tokenizer/general"]
    assert by_name["random-init"].settings.reference == "review"
    electra_only = resolve(StudyConfig(quick=True, work_dir=str(tmp_path), objectives=["electra"]))
    names = [s.name for s in stages.stage_list(electra_only)]
    assert "data/review-packed" in names and "data/review-packed-short" not in names
    random_init = next(s for s in stages.stage_list(electra_only) if s.name == "random-init")
    assert random_init.after == ("export/review-electra",)


def test_electra_pretrains_in_one_phase_with_the_same_tokens_and_budget():
    cfg = resolve(StudyConfig(objectives=["bert", "electra"])).cfg
    two, (one,) = pretrain_phases(cfg, "bert"), pretrain_phases(cfg, "electra")
    assert one.init_from is None and one.max_len == cfg.max_len
    assert one.steps == sum(p.steps for p in two) and one.minutes == cfg.pretrain_minutes
    assert all(p.batch_size * p.max_len == one.batch_size * one.max_len for p in two)


def test_the_cache_key_holds_the_objective_and_adding_one_keeps_the_others(tmp_path):
    base = dict(quick=True, work_dir=str(tmp_path / "work"), data=str(tmp_path))
    _, bert_stages = _started(StudyConfig(**base))
    keys = {s.name: cache.cache_key(s.settings) for s in bert_stages}
    assert "objective" not in keys["pretrain/review"]  # as recorded before objectives existed
    assert "kind" not in keys["data/review"]
    assert _stale(StudyConfig(**base, objectives=["bert", "mlm", "electra"])) == set()
    study = resolve(StudyConfig(**base, objectives=["bert", "mlm", "electra"]))
    settings = {s.name: s.settings for s in stages.stage_list(study)}
    assert cache.cache_key(settings["pretrain/review-electra"])["objective"] == "electra"
    assert cache.cache_key(settings["pretrain/review-mlm"])["objective"] == "mlm"
    assert cache.cache_key(settings["export/general-electra"])["objective"] == "electra"
    assert cache.cache_key(settings["data/review-packed"])["kind"] == "packed"


def test_the_objective_reaches_the_pretraining_run(tmp_path, monkeypatch):
    from hanlm.train import pretrain as pretrain_module

    seen = []
    monkeypatch.setattr(pretrain_module, "pretrain", lambda cfg: seen.append(cfg))
    study = resolve(StudyConfig(quick=True, work_dir=str(tmp_path), objectives=["electra", "mlm"]))
    for name in ("pretrain/general-electra", "pretrain/general-mlm"):
        stage = next(s for s in stages.stage_list(study) if s.name == name)
        cache.run_stage(stage, study.work, cache.Timings(tmp_path / "timings.json"))
    assert [c.objective for c in seen] == ["electra", "mlm"]
    assert seen[0].data == seen[1].data == str(study.work.data("general-packed", ""))
    assert seen[0].init_from is None
    assert seen[1].init_from == str(study.work.model("general-mlm", "-short"))


def test_a_time_budget_gives_every_run_its_minutes_and_is_keyed(tmp_path):
    steps = resolve(StudyConfig(quick=True, work_dir=str(tmp_path))).cfg
    timed = resolve(StudyConfig(quick=True, work_dir=str(tmp_path), pretrain_budget="minutes",
                                pretrain_minutes=4.0)).cfg
    assert all(p.budget_minutes is None and p.max_steps == p.steps
               for p in pretrain_phases(steps))
    short, long = pretrain_phases(timed)
    assert short.budget_minutes + long.budget_minutes == pytest.approx(4.0)
    assert short.max_steps == long.max_steps == TIMED_MAX_STEPS
    assert cache.cache_key(short)["budget_minutes"] == short.budget_minutes
    assert "budget_minutes" not in cache.cache_key(pretrain_phases(steps)[0])
    # Steps: the minutes only stop a run (the rate follows the steps on any host); minutes:
    # the rate follows the time.
    for cfg, follows in ((steps, False), (timed, True)):
        study = resolve(StudyConfig(**{**cfg.__dict__, "work_dir": str(tmp_path)}))
        stage = next(s for s in stages.stage_list(study) if s.name == "pretrain/review-short")
        assert stages.pretrain_config(stage.settings, study.work).time_schedule is follows
    base = dict(quick=True, work_dir=str(tmp_path / "work"), data=str(tmp_path))
    _started(StudyConfig(**base, pretrain_budget="minutes"))
    stale = _stale(StudyConfig(**base, pretrain_budget="minutes", pretrain_minutes=3.0))
    assert "pretrain/review-short" in stale and "data/review" not in stale


def _run_rows(means: dict[str, list[float]]) -> list[dict]:
    return [{"model": model, "task": task, "fraction": 1.0, "seed": seed, "value": value + shift,
             "train_examples": 100, "test_examples": 50}
            for model, values in means.items()
            for task, shift in (("nsmc", 0.0), ("klue-nli", -40.0), ("klue-ner", -50.0))
            for seed, value in enumerate(values, 1)]


def test_continued_models_start_from_the_general_model_of_each_bert_objective(tmp_path):
    study = resolve(StudyConfig(quick=True, work_dir=str(tmp_path), continued=True,
                                objectives=["bert", "mlm", "electra"], continued_lr=3e-4))
    assert model_names(study.cfg)[-3:] == ["continued", "continued-mlm", "random"]
    by_name = {s.name: s for s in stages.stage_list(study)}
    assert not any(n.startswith("pretrain/continued-electra") for n in by_name)
    for name, init, data in (("continued", "general", "continued"),
                             ("continued-mlm", "general-mlm", "continued-packed")):
        pretrain = by_name[f"pretrain/{name}"]
        assert pretrain.after == (f"data/{data}", f"export/{init}")
        assert pretrain.settings.init_model == init and pretrain.settings.pretrain_lr == 3e-4
        phase = pretrain.settings.phase
        assert (phase.steps, phase.max_len, phase.init_from) == (study.cfg.pretrain_steps,
                                                                  study.cfg.max_len, None)
        run = stages.pretrain_config(pretrain.settings, study.work)
        assert run.init_from == str(study.work.model(init)) and run.optim.lr == 3e-4
        assert run.data == str(study.work.data(data, ""))
    assert by_name["data/continued"].after == ("tokenizer/general",)
    # The continued stages come after the general model they start from.
    order = list(by_name)
    assert order.index("export/general") < order.index("pretrain/continued")
    assert not any(n.startswith(("data/continued", "pretrain/continued"))
                   for n in {s.name for s in stages.stage_list(resolve(StudyConfig(
                       quick=True, work_dir=str(tmp_path), continued=False)))})


def test_continued_data_reads_the_review_text_with_the_general_vocabulary(tmp_path, monkeypatch):
    from hanlm.data import build

    seen = []
    monkeypatch.setattr(build, "build_dataset", lambda cfg: seen.append(cfg))
    study = resolve(StudyConfig(quick=True, work_dir=str(tmp_path), continued=True))
    stage = next(s for s in stages.stage_list(study) if s.name == "data/continued")
    stage.run(stage.settings, study.work, cached=False)
    assert seen[0].corpus == [str(study.work.corpus("review"))]
    assert seen[0].tokenizer == str(study.work.tokenizer("general"))


def test_the_continued_summary_compares_with_review_and_general_of_its_objective():
    from hanlm.study.summary import continued_summary, continued_text

    def cell(mean, std):
        return {"mean": mean, "std": std, "n": 3}

    table = {m: {"nsmc": cell(*v), "klue-nli": cell(None, None), "klue-ner": cell(50.0, 1.0)}
             for m, v in {"review": (80.0, 0.5), "general": (78.0, 0.5),
                          "continued": (80.4, 0.5), "review-mlm": (81.0, 0.2),
                          "general-mlm": (79.0, 0.2), "continued-mlm": (82.0, 0.2)}.items()}
    out = continued_summary(table)
    nsmc = out["continued"]["nsmc"]
    assert nsmc["review"]["lead"] == pytest.approx(0.4) and nsmc["review"]["beyond_std"] is False
    assert nsmc["general"]["lead"] == pytest.approx(2.4) and nsmc["general"]["beyond_std"]
    assert out["continued-mlm"]["nsmc"]["review"]["mean"] == 81.0  # its own objective's
    # a deficit larger than the deviations is beyond them too, as a lead is
    ner = out["continued"]["klue-ner"]
    assert ner["review"]["lead"] == 0 and ner["review"]["beyond_std"] is False
    behind = continued_summary({**table, "continued": {**table["continued"],
                                                       "nsmc": cell(77.0, 0.3)}})
    assert behind["continued"]["nsmc"]["review"]["lead"] == pytest.approx(-3.0)
    assert behind["continued"]["nsmc"]["review"]["beyond_std"] is True
    assert "-3.0 vs review (beyond seed deviation)" in continued_text(behind)
    assert "klue-nli" not in out["continued"]
    text = continued_text(out)
    assert "NSMC acc. 80.4 (+0.4 vs review (within seed deviation), +2.4 vs general" in text


def test_the_report_has_a_row_per_objective_and_says_which_wins_where():
    runs = _run_rows({"review": [80.0, 80.4], "general": [70.0, 70.2],
                      "review-electra": [82.0, 82.2], "general-electra": [70.1, 69.9],
                      "random": [75.0, 75.0]})
    summary = summarize(runs, [])
    table = table_markdown(summary)
    for row in ("review-pretrained, MLM + NSP", "review-pretrained, ELECTRA",
                "general-pretrained, MLM + NSP", "general-pretrained, ELECTRA", "random init"):
        assert f"| {row} |" in table
    assert "| 82.1 ± 0.1 |" in table
    winners = summary["objectives"]
    assert winners["nsmc"]["review"]["winner"] == "electra"
    assert winners["nsmc"]["review"]["within_std"] is False
    assert winners["nsmc"]["general"]["winner"] == "bert"
    assert winners["nsmc"]["general"]["within_std"] is True  # 70.1 vs 70.0, std 0.14
    line = objectives_text(winners)
    assert line.startswith("Objectives") and summary["objectives_line"] == line
    assert "NSMC acc.: review corpus: electra (electra 82.1, bert 80.2)" in line
    assert "general corpus: bert (bert 70.1, electra 70.0) (a tie" in line
    assert set(summary["domain"]) == {"review", "general", "review-electra", "general-electra"}
    single = summarize(_run_rows({"review": [80.0], "general": [70.0], "random": [75.0]}), [])
    assert "objectives" not in single and "| review-pretrained |" in table_markdown(single)


def test_the_paired_comparison_counts_the_reviews_only_one_gets_right():
    import numpy as np

    tfidf = np.array([True] * 80 + [False] * 20)
    model = tfidf.copy()
    model[80:95] = True  # right on 15 reviews TF-IDF gets wrong
    model[:3] = False  # and wrong on 3 it gets right
    r = paired(model, tfidf, resamples=500)
    assert (r["right_where_tfidf_wrong"], r["wrong_where_tfidf_right"]) == (15, 3)
    assert r["difference"] == pytest.approx(12.0) and r["mcnemar_p"] < 0.01
    assert r["bootstrap_95"][0] > 0 < r["bootstrap_95"][1]
    assert paired(tfidf, tfidf, resamples=10)["mcnemar_p"] == 1.0


def test_paired_vs_tfidf_reads_prediction_files_of_the_test_file(tmp_path):
    from hanlm.study.full_nsmc import compare_files

    files = fx.write_nsmc(tmp_path / "nsmc")
    test = get_task("nsmc").read(files["dev"], ReadOptions())
    right = tmp_path / "right.jsonl"
    right.write_text("".join(json.dumps({"id": e.id, "label": e.label}) + "\n" for e in test))
    lines = compare_files(tmp_path / "nsmc", [right])
    assert lines[0].startswith("TF-IDF + LR: ") and f"of {len(test)} test reviews" in lines[0]
    assert lines[1].startswith(f"{right}: 100.000%")
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("".join(reversed(right.read_text().splitlines(keepends=True))))
    with pytest.raises(HanlmError, match="in file order"):
        compare_files(tmp_path / "nsmc", [shuffled])


def test_full_nsmc_runs_the_review_model_of_each_objective_and_random_init():
    assert full_nsmc_specs(resolve(StudyConfig()).cfg) == []
    cfg = resolve(StudyConfig(full_nsmc=True, objectives=["bert", "electra"],
                              full_nsmc_seeds=[42, 2])).cfg
    assert [(s.model, s.seed) for s in full_nsmc_specs(cfg)] == [
        ("review", 42), ("review-electra", 42), ("random", 42),
        ("review", 2), ("review-electra", 2), ("random", 2)]
    assert full_nsmc_specs(cfg)[0].name == "review/nsmc-full/100pct/seed-42"


def test_paired_full_nsmc_runs_decide_the_full_data_goal():
    table = {"review": {"nsmc": {"mean": 83.6}}, "random": {"nsmc": {"mean": 79.8}},
             "tfidf": {"nsmc": {"mean": 82.2}}}
    full = {"tfidf_accuracy": 87.05,
            "models": {"review": {"mean": 87.66, "beats_tfidf_every_seed": True}}}
    g = goals(table, [{"full_data": True, "value": 87.05, "train_examples": 150_000}],
              test_examples=5000, train_examples=10_000, full_nsmc=full)
    assert g["beats_tfidf_full_data"] and "87.7 vs TF-IDF" in goals_text(g)
    assert "beaten by every seed, paired" in goals_text(g)


def test_tfidf_on_the_full_files_is_compared_only_with_a_model_that_saw_as_many_reviews():
    table = {"review": {"nsmc": {"mean": 83.6}}, "random": {"nsmc": {"mean": 79.8}},
             "tfidf": {"nsmc": {"mean": 82.2}}}
    full = [{"full_data": True, "value": 87.05, "train_examples": 150_000}]
    subsample = goals(table, full, test_examples=5000, train_examples=10_000)
    assert "beats_tfidf_full_data" not in subsample
    assert "not compared: the model was fine-tuned on 10,000 reviews, TF-IDF on 150,000" \
        in goals_text(subsample)
    everything = goals({**table, "review": {"nsmc": {"mean": 87.66}}}, full,
                       test_examples=50_000, train_examples=150_000)
    assert everything["beats_tfidf_full_data"] and goals_text(everything).endswith("87.0 (beaten)")


def test_a_lead_over_tfidf_inside_the_sampling_error_is_not_a_win():
    table = {"review": {"nsmc": {"mean": 82.5}}, "random": {"nsmc": {"mean": 79.8}},
             "tfidf": {"nsmc": {"mean": 82.2}}}
    tie = goals(table, [], test_examples=5000)
    assert not tie["beats_tfidf_same_data"] and 1.0 < tie["tfidf_sampling_error_95"] < 1.1
    assert "+0.3 points, inside the 95% sampling error of 5,000 test reviews" in goals_text(tie)
    win = goals({**table, "review": {"nsmc": {"mean": 84.0}}}, [], test_examples=5000)
    assert win["beats_tfidf_same_data"] and "(beaten)" in goals_text(win)
    assert goals(table, [], test_examples=50_000)["beats_tfidf_same_data"] is False
    assert goals({**table, "review": {"nsmc": {"mean": 82.6}}}, [],
                 test_examples=50_000)["beats_tfidf_same_data"]


MICRO = dict(target_chars=150, vocab_size=200, pretrain_steps=4, pretrain_batch_size=4,
             max_len=32, short_len=16, short_share=0.5, nsmc_train=0, nsmc_test=0,
             fractions=[0.25, 1.0], klue_split="1:0.34", klue_limit=0, seeds=[1], finetune_epochs=1.0, klue_finetune_epochs=1.0,
             finetune_min_steps=2,
             preset="tiny", re_share=0.3, full_nsmc_baseline=True,
             objectives=["bert", "electra"], full_nsmc=True, full_nsmc_seeds=[1], continued=True)
MICRO_MODELS = {"review", "general", "review-electra", "general-electra", "continued", "random"}


def _check_micro_results(results: dict, work: Path, results_dir: Path, printed: str) -> None:
    """What the first micro study wrote: runs, pretraining phases, objectives, full NSMC, report."""
    assert len(results["runs"]) == 6 * (3 + 1)
    assert {r["model"] for r in results["runs"]} == MICRO_MODELS
    assert results["pretraining"]["review"]["steps"] == 4
    assert results["pretraining"]["general-electra"]["objective"] == "electra"
    assert [p["steps"] for p in results["pretraining"]["review-electra"]["phases"]] == [4]
    assert (work / "data-review-packed" / "meta.json").is_file()
    assert not (work / "data-review-electra").exists()
    electra = json.loads((work / "model-review-electra" / "config.json").read_text())
    assert electra["model_type"] == "electra"
    assert json.loads((work / "model-random" / "config.json").read_text())[
        "model_type"] == "bert"
    winners = results["summary"]["objectives"]
    assert set(winners["nsmc"]["review"]["means"]) == {"bert", "electra"}
    full = results["full_nsmc"]
    assert [(r["model"], r["seed"]) for r in full["runs"]] == [
        ("review", 1), ("review-electra", 1), ("random", 1)]
    assert all(r["test_examples"] == full["test_examples"] > 0 for r in full["runs"])
    assert set(results["summary"]["full_nsmc"]["models"]) == {"review", "review-electra",
                                                              "random"}
    assert results["source_sha256"]["work_dir_made_by"] == results["source_sha256"]["this_invocation"]
    phases = results["pretraining"]["review"]["phases"]
    assert [(p["steps"], p["batch_size"], p["max_len"]) for p in phases] == [(2, 8, 16), (2, 4, 32)]
    assert (work / "model-review-short" / "config.json").is_file()
    table = results["summary"]["table"]
    assert set(table) == MICRO_MODELS | {"tfidf"}
    assert all(table[m]["nsmc"]["mean"] is not None for m in table)
    for plot in ("pretraining_loss.png", "data_efficiency.png", "domain_heatmap.png"):
        assert (results_dir / plot).stat().st_size > 1000
    assert "| review-pretrained, MLM + NSP |" in printed and "Goal:" in printed
    assert "| review-pretrained, ELECTRA |" in printed and "Objectives, best first" in printed
    assert "Full NSMC:" in printed


def _check_micro_continued(results: dict, work: Path, printed: str) -> None:
    """The general model continued on the review text, read with the general vocabulary, for
    the review model's step budget in one phase; the models carry the pretraining dropout."""
    assert [(p["steps"], p["max_len"]) for p in results["pretraining"]["continued"]["phases"]] == [
        (4, 32)]
    table = results["summary"]["table"]
    assert "general-electra" not in {m for m in table if m.startswith("continued")}
    meta = json.loads((work / "data-continued" / "meta.json").read_text())
    general = json.loads((work / "data-general" / "meta.json").read_text())
    assert meta["tokenizer_fingerprint"] == general["tokenizer_fingerprint"]
    assert meta["documents"] == json.loads(
        (work / "data-review" / "meta.json").read_text())["documents"]
    assert set(results["summary"]["continued"]["continued"]["nsmc"]) == {"mean", "review",
                                                                         "general"}
    assert "| general, continued on reviews, MLM + NSP |" in printed
    assert "Continued pretraining" in printed
    # The pretraining dropout (0) is what fine-tuning uses unless told otherwise.
    assert json.loads((work / "model-review" / "config.json").read_text())["hidden_dropout_prob"] == 0
    assert {config.read_yaml(p)["dropout"] for p in (work / "finetune").rglob("config.yaml")} == {None}


def _check_micro_reruns(cfg: StudyConfig, work: Path, tmp_path: Path) -> None:
    """Which stages and runs a later invocation redoes, with the same or changed settings."""
    # A second invocation finds every stage complete and recomputes nothing.
    before = json.loads((work / "timings.json").read_text(encoding="utf-8"))
    assert run_study(cfg) == 0
    after = json.loads((work / "timings.json").read_text(encoding="utf-8"))
    assert after == before
    # A fine-tuning setting redoes only the runs it changes.
    finished = {p.parent: p.stat().st_mtime_ns for p in (work / "finetune").rglob("metrics.json")}
    assert len(finished) == 6 * 4 + 3
    assert run_study(StudyConfig(work_dir=str(work), results=str(tmp_path / "r1"),
                                 **{**MICRO, "klue_finetune_epochs": 5.0})) == 0
    redone = {d for d, t in finished.items() if (d / "metrics.json").stat().st_mtime_ns != t}
    assert {d.relative_to(work / "finetune").parts[1] for d in redone} == {"klue-nli", "klue-ner"}
    assert len(redone) == 6 * 2
    # A model whose weights changed (pretrained again) redoes exactly the runs that read it.
    weights = work / "model-general" / "model.safetensors"
    tensors = load_file(weights)
    first = next(iter(tensors))
    tensors[first] = tensors[first] + 1e-3
    save_file(tensors, weights, metadata={"format": "pt"})
    before_change = {p.parent: p.stat().st_mtime_ns for p in (work / "finetune").rglob("metrics.json")}
    assert run_study(StudyConfig(work_dir=str(work), results=str(tmp_path / "r1b"),
                                 **{**MICRO, "klue_finetune_epochs": 5.0})) == 0
    rerun = {d for d, t in before_change.items() if (d / "metrics.json").stat().st_mtime_ns != t}
    assert {d.relative_to(work / "finetune").parts[0] for d in rerun} == {"general"}
    assert len(rerun) == 4
    # A task-data setting redoes the task stages and keeps the pretrained models.
    pretrained = (work / "pretrain-review" / "final_metrics.json").stat().st_mtime_ns
    # (With --finetune-dropout every run fine-tunes with it.)
    assert run_study(StudyConfig(work_dir=str(work), results=str(tmp_path / "r2"), overwrite=True,
                                 **{**MICRO, "klue_split": "2:0.34", "finetune_dropout": 0.1})) == 0
    assert {config.read_yaml(p)["dropout"] for p in (work / "finetune").rglob("config.yaml")} == {0.1}
    assert (work / "pretrain-review" / "final_metrics.json").stat().st_mtime_ns == pretrained
    assert all((d / "metrics.json").stat().st_mtime_ns != t for d, t in finished.items()
               if d not in redone)
    # Another plan in the same work directory is refused.
    with pytest.raises(HanlmError, match="other settings"):
        run_study(StudyConfig(work_dir=str(work), results=str(tmp_path / "r3"),
                              **{**MICRO, "vocab_size": 300}))


@pytest.mark.slow
def test_micro_study_end_to_end_and_resume(tmp_path, monkeypatch, capsys):
    root = make_shared_data(tmp_path / "data")
    monkeypatch.setenv("HANLM_SHARED_DATA", str(root))
    cfg = StudyConfig(work_dir=str(tmp_path / "work"), results=str(tmp_path / "results"),
                      **MICRO)
    assert run_study(cfg) == 0
    results = json.loads((tmp_path / "results" / "results.json").read_text(encoding="utf-8"))
    printed = capsys.readouterr().out
    work = tmp_path / "work"
    _check_micro_results(results, work, tmp_path / "results", printed)
    _check_micro_continued(results, work, printed)
    _check_micro_reruns(cfg, work, tmp_path)


@pytest.mark.shared_data
def test_evaluation_texts_of_the_shared_data(shared_data):
    texts = corpora_lib.evaluation_texts(Sources(shared_data))
    assert len(texts) == 50_000 + 2 * 3_000 + 5_000


@pytest.mark.parametrize("path", sorted(MODES.glob("*.yaml")), ids=lambda p: p.name)
def test_mode_files_load(path):
    cfg = resolve(config.build(StudyConfig, config.read_yaml(path), source=str(path))).cfg
    assert cfg.seeds and cfg.pretrain_steps > 0


def test_the_quick_mode_file_is_what_quick_runs():
    spelled = resolve(config.build(StudyConfig, config.read_yaml(mode_file("quick"))))
    assert spelled == resolve(StudyConfig(quick=True))
    assert spelled.cfg.target_chars == 2_000_000 and spelled.cfg.mode == "quick"
    assert resolve(StudyConfig()).cfg == StudyConfig(fractions=[0.01, 0.1, 1.0])


def test_study_help_prints_every_setting():
    import argparse

    parser = argparse.ArgumentParser(prog="hanlm study")
    config.add_arguments(parser, StudyConfig)
    text = " ".join(parser.format_help().split())
    assert "87.4% reference" in text and "--pretrain-mlm-probability" in text
