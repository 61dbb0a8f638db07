"""The study's work directory: every path in it, named once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WorkDir:
    """Stage outputs under one root. `phase` is a pretraining phase's suffix ("-short" for
    phase 1, "" for the phase whose export is fine-tuned)."""

    root: Path

    @property
    def stages_file(self) -> Path:
        """The settings each stage was started with (`hanlm.study.cache`)."""
        return self.root / "stages.json"

    @property
    def timings_file(self) -> Path:
        return self.root / "timings.json"

    @property
    def source_file(self) -> Path:
        return self.root / "source.sha256"

    @property
    def results(self) -> Path:
        """Where results.json, the plots and report.md go unless --results says otherwise."""
        return self.root / "results"

    @property
    def corpora(self) -> Path:
        return self.root / "corpora"

    @property
    def corpora_report(self) -> Path:
        return self.corpora / "corpora.json"

    def corpus(self, name: str) -> Path:
        return self.corpora / f"{name}.txt"

    def tokenizer(self, name: str) -> Path:
        return self.root / f"tokenizer-{name}"

    def data(self, name: str, phase: str) -> Path:
        return self.root / f"data-{name}{phase}"

    def pretrain(self, name: str, phase: str) -> Path:
        return self.root / f"pretrain-{name}{phase}"

    def model(self, name: str, phase: str = "") -> Path:
        """A Hugging Face model directory: an export of a pretraining phase, or `random`."""
        return self.root / f"model-{name}{phase}"

    @property
    def nsmc(self) -> Path:
        return self.root / "nsmc"

    def nsmc_file(self, part: str) -> Path:
        """`test` or a training fraction's name (`hanlm.study.plan.fraction_name`)."""
        return self.nsmc / ("test.txt" if part == "test" else f"train-{part}.txt")

    def finetune(self, run_name: str) -> Path:
        return self.root / "finetune" / run_name

    def baseline(self, key: str) -> Path:
        return self.root / "baselines" / f"{key}.json"
