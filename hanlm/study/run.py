"""`hanlm study`: the domain study of GitHub issue #7, one command, resumable.

Stages 1-6 (`hanlm.study.stages`) are cached in the work directory by the settings each reads
(`hanlm.study.cache`), so a killed study resumes where it stopped and a changed setting redoes
only the stages that read it; stages 7-8 (`hanlm.study.finetune`) check each run's own inputs;
with --full-nsmc, the review model of each objective and random init are fine-tuned on all of
NSMC and compared with TF-IDF + LR, paired (`hanlm.study.full_nsmc`); stage 9 writes
results.json, PNG plots and report.md (`hanlm.study.report`). With --pilot, `hanlm.study.pilot`
runs instead: the review model's stages alone, scored on a validation split.
"""

from __future__ import annotations

import time
from typing import Any

from hanlm.provenance import command_line
from hanlm.study import cache, report, summary
from hanlm.study.config import StudyConfig
from hanlm.study.corpora import Sources
from hanlm.study.finetune import baseline_stage, finetune_stage
from hanlm.study.full_nsmc import full_nsmc_stage
from hanlm.study.plan import Study, log_plan, model_phases, pretrained_models, resolve
from hanlm.study.stages import stage_list

__all__ = ["StudyConfig", "run_study"]


def run_study(cfg: StudyConfig) -> int:
    if cfg.pilot:
        from hanlm.study.pilot import run_pilot

        return run_pilot(cfg)
    started = time.perf_counter()
    study = resolve(cfg)
    sources = Sources(study.data)
    outputs, timings, source = run_cached_stages(study, sources)

    models = {**{m.name: outputs[f"export/{m.name}"] for m in pretrained_models(study.cfg)},
              "random": outputs["random-init"]}
    files = outputs["task files"]
    runs = finetune_stage(study.cfg, study.work, sources, models, files, timings)
    baselines = baseline_stage(study.cfg, study.work, sources, files, timings)
    full_nsmc = full_nsmc_stage(study.cfg, study.work, sources, models, timings)

    results = summary.collect(plan=study.record(), corpora=outputs["corpora"],
                             pretraining=_pretraining(study), runs=runs, baselines=baselines,
                             full_nsmc=full_nsmc, timings=timings.seconds, source=source,
                             command=command_line("hanlm.study.run.run_study (Python API)"),
                             wall_seconds=time.perf_counter() - started)
    written = report.write(results, study.results)
    print(report.summary_text(results))
    print(f"\nwritten: {', '.join(str(p) for p in written)}")
    return 0


def run_cached_stages(study: Study, sources: Sources
                      ) -> tuple[dict[str, Any], cache.Timings, dict[str, str]]:
    """Stages 1-6 (`stage_list`: with --pilot, the review models' alone), each run unless
    cached, after refusing a work directory made with other settings: (their outputs by stage
    name, the timings, the source that made the work directory and the one running now)."""
    sources.check()
    stages = stage_list(study)
    cache.check_work_dir(study.work, stages, study.cfg.overwrite)
    source = cache.source_record(study.work)
    if not study.cfg.pilot:
        log_plan(study)
    timings = cache.Timings(study.work.timings_file)
    outputs = {stage.name: cache.run_stage(stage, study.work, timings) for stage in stages}
    return outputs, timings, source


def _pretraining(study: Study) -> dict[str, Any]:
    """Each pretrained model's pretraining summed over its phases."""
    return {m.name: {"corpus": m.corpus, "objective": m.objective, **summary.pretraining_summary(
        [study.work.pretrain(m.name, p.suffix) for p in model_phases(study.cfg, m)])}
        for m in pretrained_models(study.cfg)}
