"""The settings of `hanlm export`, importable without torch (the CLI parses with it)."""

from __future__ import annotations

from dataclasses import dataclass

from hanlm.config import opt


@dataclass
class ExportConfig:
    checkpoint: str = opt(
        help="a pretraining run directory (its latest checkpoint), a checkpoint, or a "
        "fine-tuned model (RUN/model) or fine-tuning run directory", positional=True)
    out: str | None = opt(
        None, "output directory (needed for a pretraining checkpoint; a fine-tuned model pushed "
        "without it is staged for the upload only)")
    name: str | None = opt(None, "model name for the card (default: the output folder's name)")
    verify: bool = opt(True, "reload the export with transformers and compare logits")
    overwrite: bool = opt(False, "replace an existing output directory")
    push_to_hub: str | None = opt(None, "also upload to this Hugging Face Hub repo id")
    private: bool = opt(False, "create the Hub repo as private")
