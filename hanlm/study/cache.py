"""Stage caching: a stage is skipped when its output is complete and was made with the
settings it reads now.

Each stage takes one frozen dataclass of settings (`hanlm.study.stages`), the only part of the
study's config it reads; its fields (those with `compare=True`) are its cache key, recorded in
the work directory's stages.json when the stage starts. A stage whose key changed, and every
stage after it, is refused, or redone with --overwrite; the others are kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hanlm import atomic
from hanlm.errors import HanlmError
from hanlm.study.workdir import WorkDir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    settings: Any  # a frozen dataclass: what `run` reads of the config
    run: Callable[..., Any]  # run(settings, work, *, cached) -> the stage's result
    done: Path  # exists once the output is complete
    outputs: tuple[Path, ...]  # removed when the stage is redone
    after: tuple[str, ...] = ()  # the stages whose outputs it reads


KEYED_SINCE = "keyed_since"


def keyed_since(value: Any) -> dict[str, Any]:
    """Field metadata of a setting added to a stage after work directories were made: at
    `value`, the stage's behaviour before the setting existed, the field is left out of the
    cache key, so the stages recorded without it stay valid."""
    return {KEYED_SINCE: value}


def _keyed(settings: Any, f: dataclasses.Field) -> bool:
    if not f.compare:
        return False
    return KEYED_SINCE not in f.metadata or getattr(settings, f.name) != f.metadata[KEYED_SINCE]


def cache_key(settings: Any) -> dict[str, Any]:
    """The compared fields of a settings dataclass (nested ones included), as JSON values."""
    key = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
           if _keyed(settings, f)}
    key = {k: cache_key(v) if dataclasses.is_dataclass(v) else v for k, v in key.items()}
    return json.loads(json.dumps(key))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def stale_stages(stages: list[Stage], records: dict[str, Any]) -> dict[str, str]:
    """Started stages whose settings changed, or that read a stale stage: name -> why."""
    stale: dict[str, str] = {}
    for stage in stages:
        if stage.name not in records:
            continue
        changed = _changed(records[stage.name], cache_key(stage.settings))
        before = [name for name in stage.after if name in stale]
        if changed:
            stale[stage.name] = f"{stage.name} ({', '.join(changed)})"
        elif before:
            stale[stage.name] = f"{stage.name} (reads {', '.join(before)})"
    return stale


def _check_layout(work: WorkDir, overwrite: bool) -> None:
    """Refuse a work directory without stages.json: another program's folder, or a study of
    older hanlm code, whose settings are not recorded per stage (discarded with --overwrite)."""
    root = work.root
    if work.stages_file.is_file() or not root.is_dir() or not any(root.iterdir()):
        return
    older_study = (root / "plan.json").is_file()
    if older_study and overwrite:
        logger.info("discarding %s: a study of older hanlm code (no stages.json)", root)
        shutil.rmtree(root)
        return
    what = ("holds a study of older hanlm code, without the settings of each stage; pass "
            "--overwrite to discard it or" if older_study else "is not a study work directory;")
    raise HanlmError(f"the work directory {what} choose another --work-dir", path=str(root))


def check_work_dir(work: WorkDir, stages: list[Stage], overwrite: bool) -> None:
    """Before any stage runs: refuse stale stages, or remove them with `overwrite`."""
    _check_layout(work, overwrite)
    records = _read_json(work.stages_file) or {}
    stale = stale_stages(stages, records)
    if stale and not overwrite:
        raise HanlmError("the work directory holds stages made with other settings: "
                         f"{'; '.join(stale.values())}; pass --overwrite to redo them (the "
                         "other stages are kept) or choose another --work-dir",
                         path=str(work.root))
    if stale:
        logger.info("redoing stages made with other settings: %s", "; ".join(stale.values()))
    by_name = {stage.name: stage for stage in stages}
    for name in stale:
        for path in by_name[name].outputs:
            shutil.rmtree(path, ignore_errors=True)
        del records[name]
    work.root.mkdir(parents=True, exist_ok=True)
    atomic.write_text(work.stages_file, json.dumps(records, indent=2))


class Timings:
    """Seconds each stage took when it was computed, kept across resumed invocations."""

    def __init__(self, path: Path):
        self.path = path
        self.seconds: dict[str, float] = _read_json(path) or {}

    def record(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = round(seconds, 1)
        atomic.write_text(self.path, json.dumps(self.seconds, indent=2))


def run_stage(stage: Stage, work: WorkDir, timings: Timings) -> Any:
    """Run a stage unless its output is complete (it then only reads it back); log and time it.
    Its settings are recorded first, so a killed stage resumes only with the same settings."""
    if stage.done.is_file():
        logger.info("[%s] cached", stage.name)
        return stage.run(stage.settings, work, cached=True)
    logger.info("[%s] running", stage.name)
    records = _read_json(work.stages_file) or {}
    records[stage.name] = cache_key(stage.settings)
    atomic.write_text(work.stages_file, json.dumps(records, indent=2))
    start = time.perf_counter()
    result = stage.run(stage.settings, work, cached=False)
    timings.record(stage.name, time.perf_counter() - start)
    logger.info("[%s] done in %.0f s", stage.name, time.perf_counter() - start)
    return result


def source_fingerprint() -> str:
    """sha256 of hanlm's own Python files (their paths and bytes)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*.py")):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def source_record(work: WorkDir) -> dict[str, str]:
    """The fingerprint of the hanlm source that made the work directory and of the source
    running now: cached stages made by other code are reused (a code edit must not throw away
    an hour of pretraining) but said so, in the log and in results.json."""
    now = source_fingerprint()
    if not work.source_file.is_file():
        atomic.write_text(work.source_file, now)
    made_by = work.source_file.read_text(encoding="utf-8").strip()
    if made_by != now:
        logger.warning("%s was made by other hanlm code (source sha256 %s, now %s): its cached "
                       "stages are reused as they are; delete it or choose another --work-dir to "
                       "redo them with this code", work.root, made_by[:12], now[:12])
    return {"work_dir_made_by": made_by, "this_invocation": now}
