"""`hanlm export`: a checkpoint -> a Hugging Face model directory with a model card.

The result is what `save_pretrained` writes (config.json, model.safetensors) plus the tokenizer
files and README.md, so `AutoModelForPreTraining`, `AutoModelForMaskedLM`, `AutoTokenizer` and
`pipeline("fill-mask")` load it without hanlm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hanlm.export.config import ExportConfig

if TYPE_CHECKING:
    from hanlm.export.model import export_model, load_checkpoint_model, verify_export

__all__ = ["ExportConfig", "export_model", "load_checkpoint_model", "verify_export"]

_MODEL = {"export_model", "load_checkpoint_model", "verify_export"}


def __getattr__(name: str):
    # The functions need torch: loaded on first use, so `hanlm.export.config` (imported to parse
    # `hanlm export --help`) does not pay for torch through this package.
    if name in _MODEL:
        from hanlm.export import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
