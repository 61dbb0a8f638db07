"""`hanlm fill-mask`: top-k predictions for [MASK] with the stock transformers pipeline."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from hanlm.config import opt
from hanlm.errors import HanlmError

logger = logging.getLogger(__name__)


@dataclass
class FillMaskConfig:
    model: str = opt(help="an exported model directory", positional=True)
    text: list[str] = opt(help="sentences with [MASK]", positional=True)
    top_k: int = opt(5, "predictions per mask", min=1)
    json: bool = opt(False, "print JSON instead of a table")
    trust_pickle: bool = opt(False, "allow pickle (pytorch_model.bin) weights, which can run code")


def _pretokenizer(model_dir: Path):
    meta_file = model_dir / "hanlm_tokenizer.json"
    if meta_file.is_file() and json.loads(meta_file.read_text()).get("pretokenize") == "kiwi":
        from hanlm.tokenizer import kiwi_split

        def split(text: str) -> str:
            # keep [MASK] intact: split only the text around it
            return " [MASK] ".join(kiwi_split(part) for part in text.split("[MASK]")).strip()

        return split
    return lambda text: text


@contextlib.contextmanager
def _quiet_transformers():
    """A pretraining export loaded as BertForMaskedLM has an unused NSP head and pooler, and
    transformers prints a table about it on every load: silence it for this load only."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()


def fill_mask(model_dir: str | Path, texts: list[str], top_k: int = 5, *,
              trust_pickle: bool = False) -> list[list[dict]]:
    from transformers import pipeline

    from hanlm.model.weights import check_weights

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise HanlmError("not an exported model directory (no config.json)", path=str(model_dir))
    if (model_dir / "generator" / "config.json").is_file():
        # An ELECTRA export: the discriminator tells replaced tokens apart, its generator fills.
        model_dir = model_dir / "generator"
    for text in texts:
        if "[MASK]" not in text:
            raise HanlmError(f"no [MASK] in {text!r}")
    safe = check_weights(model_dir, trust_pickle)  # pickle weights only with --trust-pickle
    if not safe:
        logger.warning("%s: loading pickle weights (--trust-pickle): this can run code", model_dir)
    with _quiet_transformers():
        fill = pipeline("fill-mask", model=str(model_dir), tokenizer=str(model_dir), top_k=top_k,
                        model_kwargs={"use_safetensors": safe})
    prepare = _pretokenizer(model_dir)
    results = []
    for text in texts:
        out = fill(prepare(text))
        results.append(out if isinstance(out[0], dict) else out[0])
    return results


def fill_mask_cli(cfg: FillMaskConfig) -> int:
    results = fill_mask(cfg.model, cfg.text, cfg.top_k, trust_pickle=cfg.trust_pickle)
    for text, predictions in zip(cfg.text, results, strict=True):
        if cfg.json:
            print(json.dumps({"text": text, "predictions": predictions}, ensure_ascii=False))
            continue
        print(text)
        for p in predictions:
            print(f"  {p['score']:.3f}  {p['token_str']}")
    return 0
