"""Every task hanlm knows, by name. Dataset specifics are data here, not code.

A new dataset of an existing family is one entry below; a new family is one module (a frozen
dataclass satisfying `hanlm.tasks.base.Task`) plus one entry. The loop never changes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hanlm.errors import HanlmError
from hanlm.tasks.base import Task
from hanlm.tasks.mrc import QaTask
from hanlm.tasks.ner import TokenTask
from hanlm.tasks.relation import RelationTask
from hanlm.tasks.sequence import Columns, SequenceTask

NLI_LABELS = ("entailment", "neutral", "contradiction")
YNAT_LABELS = ("IT과학", "경제", "사회", "생활문화", "세계", "스포츠", "정치")

TASKS: dict[str, Task] = {
    "nsmc": SequenceTask(
        "nsmc", {"table": Columns(text="document", label="label", id="id")},
        labels=("0", "1"), metric="accuracy",
        description="NSMC movie-review sentiment (0 negative, 1 positive)"),
    "klue-ynat": SequenceTask(
        "klue-ynat",
        {"json": Columns(text="title", label="label", id="guid"),
         "table": Columns(text="title", label="label_name", id="guid")},
        labels=YNAT_LABELS, metric="macro_f1", description="KLUE-YNAT news-headline topic"),
    "klue-nli": SequenceTask(
        "klue-nli",
        {"json": Columns(text="premise", text_pair="hypothesis", label="gold_label", id="guid")},
        labels=NLI_LABELS, metric="accuracy", group_by="text",
        description="KLUE-NLI natural language inference (premise, hypothesis)"),
    "kornli": SequenceTask(
        "kornli", {"table": Columns(text="sentence1", text_pair="sentence2", label="gold_label")},
        labels=NLI_LABELS, metric="accuracy", group_by="text",
        description="KorNLI natural language inference (sentence1, sentence2)"),
    "klue-sts": SequenceTask(
        "klue-sts",
        {"json": Columns(text="sentence1", text_pair="sentence2", label="labels.label",
                         id="guid")},
        regression=True, score_range=(0.0, 5.0), metric="sts",
        description="KLUE-STS semantic textual similarity (0-5 regression)"),
    "korsts": SequenceTask(
        "korsts",
        {"table": Columns(text="sentence1", text_pair="sentence2", label="score", id="id")},
        regression=True, score_range=(0.0, 5.0), metric="sts",
        description="KorSTS semantic textual similarity (0-5 regression)"),
    "csv": SequenceTask(
        "csv", {"any": Columns(text="text", label="label")}, metric="accuracy",
        description="text classification from your own CSV/TSV/JSON/JSONL columns"),
    "klue-ner": TokenTask("klue-ner"),
    "klue-re": RelationTask("klue-re"),
    "korquad": QaTask("korquad", metric="korquad",
                      description="KorQuAD 1.0 extractive question answering"),
    "klue-mrc": QaTask("klue-mrc", metric="klue-mrc", allow_impossible=True,
                       description="KLUE-MRC extractive QA with unanswerable questions"),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise HanlmError(f"unknown task '{name}'; choose one of {', '.join(TASKS)}")
    return TASKS[name]


def customize(task: Task, **overrides: Any) -> Task:
    """A copy of `task` with user settings applied (only those it has; None = keep).

    Column flags replace the columns of a `SequenceTask` for every format, so any
    CSV/TSV/JSON(L) file can feed any sequence task.
    """
    columns = {k: overrides.pop(k) for k in ("text", "text_pair", "label", "id")
               if overrides.get(k) is not None}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if columns and isinstance(task, SequenceTask):
        base = next(iter(task.columns.values()))
        overrides["columns"] = {"any": dataclasses.replace(base, **columns)}
    elif columns:
        raise HanlmError(f"task '{task.name}' reads a fixed format; --*-column flags apply to "
                         "sentence tasks (nsmc, klue-ynat, klue-nli, klue-sts, kornli, korsts, "
                         "csv)")
    known = {f.name for f in dataclasses.fields(task) if f.init}  # type: ignore[arg-type]
    return dataclasses.replace(task, **{k: v for k, v in overrides.items() if k in known})
