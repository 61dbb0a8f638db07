"""Which weight files hanlm loads: safetensors, and pickles only when the user says so.

A `pytorch_model.bin` is a pickle: loading it can run arbitrary code from whoever made it.
Every loader in hanlm (pretraining `--init-from`, fine-tuning, fill-mask) asks here first.

With ``--trust-pickle`` the pickle is read once and written as safetensors next to it
(``pytorch_model.bin`` -> ``model.safetensors``, shards and index alike). Next to it, not in a
cache: every later load of that directory, by hanlm or by stock ``transformers`` (which prefers
safetensors), then reads the safetensors without any flag or lookup, and the directory stays
one self-contained model to export, fine-tune or share.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

from hanlm.errors import HanlmError

logger = logging.getLogger(__name__)

_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLE_INDEX, _SAFE_INDEX = _PICKLE_WEIGHTS[1], _SAFE_WEIGHTS[1]


def check_weights(directory: Path, trust_pickle: bool) -> bool:
    """True when the weights are safetensors (always, once a trusted pickle is converted);
    pickle weights need ``trust_pickle``, and are then converted to safetensors next to them."""
    if any((directory / name).is_file() for name in _SAFE_WEIGHTS):
        return True
    if any((directory / name).is_file() for name in _PICKLE_WEIGHTS):
        if not trust_pickle:
            raise HanlmError(
                "the weights are a pickle file (pytorch_model.bin), which can run arbitrary "
                "code when loaded; pass --trust-pickle if you trust their source (they are "
                "then converted once to model.safetensors next to them)",
                path=str(directory),
            )
        convert_pickle(directory)
        return True
    raise HanlmError("no weights found (expected model.safetensors)", path=str(directory))


def convert_pickle(directory: Path) -> list[Path]:
    """Write the pickle weights of `directory` as safetensors beside them; the files written.

    Tensors that share storage (tied embeddings) are stored once each, as copies:
    ``from_pretrained`` ties them again.
    """
    import torch
    from safetensors.torch import save_file

    from hanlm import atomic

    index = directory / _PICKLE_INDEX
    if index.is_file():
        spec = json.loads(index.read_text(encoding="utf-8"))
        shards = sorted(set(spec["weight_map"].values()))
    else:
        spec, shards = None, ["pytorch_model.bin"]
    renamed = {name: _safe_name(name) for name in shards}
    logger.warning("%s: loading pickle weights (--trust-pickle): this can run code; converting "
                   "them once to safetensors: %s", directory, ", ".join(f"{a} -> {b}" for a, b in renamed.items()))
    written = []
    try:
        for source, target in renamed.items():
            try:
                state = torch.load(directory / source, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as e:
                raise HanlmError(f"{source} holds more than tensors; hanlm reads pickles with "
                                 f"weights_only=True only: {' '.join(str(e).split())[:200]}",
                                 path=str(directory)) from None
            state = {k: v.detach().clone().contiguous() for k, v in state.items()
                     if isinstance(v, torch.Tensor)}
            tmp = directory / (target + ".tmp")
            save_file(state, str(tmp), metadata={"format": "pt"})
            tmp.replace(directory / target)
            written.append(directory / target)
        if spec is not None:
            spec["weight_map"] = {k: renamed[v] for k, v in spec["weight_map"].items()}
            atomic.write_text(directory / _SAFE_INDEX, json.dumps(spec, indent=2))
            written.append(directory / _SAFE_INDEX)
    except PermissionError:
        raise HanlmError("cannot write the converted model.safetensors next to the pickle "
                         "weights: copy the model directory somewhere writable",
                         path=str(directory)) from None
    return written


def _safe_name(pickle_name: str) -> str:
    """pytorch_model.bin -> model.safetensors; pytorch_model-00001-of-00002.bin -> model-…"""
    stem = pickle_name.removesuffix(".bin")
    return stem.replace("pytorch_model", "model", 1) + ".safetensors"
