"""Which weight files hanlm loads: safetensors, and pickles only when the user says so.

A `pytorch_model.bin` is a pickle: loading it can run arbitrary code from whoever made it.
Every loader in hanlm (pretraining `--init-from`, fine-tuning, fill-mask) asks here first.
"""

from __future__ import annotations

from pathlib import Path

from hanlm.errors import HanlmError

_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def check_weights(directory: Path, trust_pickle: bool) -> bool:
    """True when the weights are safetensors; pickle weights need ``trust_pickle``."""
    if any((directory / name).is_file() for name in _SAFE_WEIGHTS):
        return True
    if any((directory / name).is_file() for name in _PICKLE_WEIGHTS):
        if not trust_pickle:
            raise HanlmError(
                "the weights are a pickle file (pytorch_model.bin), which can run arbitrary "
                "code when loaded; convert them to model.safetensors, or pass --trust-pickle if "
                "you trust their source",
                path=str(directory),
            )
        return False
    raise HanlmError("no weights found (expected model.safetensors)", path=str(directory))
