"""Writing a pretraining checkpoint as a Hugging Face model directory (`hanlm export`), or
sharing a fine-tuned one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from hanlm import atomic
from hanlm.errors import HanlmError
from hanlm.export.card import pretraining_card
from hanlm.export.config import ExportConfig
from hanlm.model import objectives
from hanlm.tokenizer import format as tokenizer_files
from hanlm.train.checkpoint import resolve_checkpoint

logger = logging.getLogger(__name__)

def _run_dir(checkpoint_path: Path) -> Path:
    run_dir = checkpoint_path.parent.parent
    if not (run_dir / "run.json").is_file():
        raise HanlmError("checkpoint is not inside a hanlm pretraining run (no run.json)",
                         path=str(checkpoint_path))
    return run_dir


def load_checkpoint_model(path: str | Path) -> tuple[torch.nn.Module, dict, dict, Path]:
    """(model, run.json, checkpoint state, run dir) of a run or checkpoint directory; the model
    is what the run's objective trains (hanlm/model/objectives.py)."""
    ckpt = resolve_checkpoint(path)
    run_dir = _run_dir(ckpt.path)
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    model = objectives.empty_model(run)
    try:
        missing, unexpected = model.load_state_dict(ckpt.model_state(), strict=False)
    except RuntimeError as e:  # shapes differ: weights of another preset than run.json says
        detail = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), e)
        raise HanlmError(f"checkpoint does not match its model config (another preset?): {detail}",
                         path=str(ckpt.path)) from None
    if unexpected or [m for m in missing if "position_ids" not in m]:
        raise HanlmError(
            f"checkpoint does not match its model config (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]})", path=str(ckpt.path),
        )
    model.eval()
    return model, run, ckpt.state, run_dir


def export_model(cfg: ExportConfig) -> Path:
    from hanlm.export.hub import export_finetuned, finetuned_model_dir

    if (finetuned := finetuned_model_dir(cfg.checkpoint)) is not None:
        return export_finetuned(finetuned, cfg)
    if cfg.out is None:
        raise HanlmError("--out is required to export a pretraining checkpoint",
                         path=str(cfg.checkpoint))
    model, run, state, run_dir = load_checkpoint_model(cfg.checkpoint)
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise HanlmError("output directory is not empty (use --overwrite)", path=str(out))
    tok_dir = run_dir / "tokenizer"
    tokenizer_meta = {}
    if (tok_dir / "hanlm_tokenizer.json").is_file():
        tokenizer_meta = json.loads((tok_dir / "hanlm_tokenizer.json").read_text(encoding="utf-8"))
    name = cfg.name or out.name
    with atomic.directory(out) as tmp:
        for directory in objectives.save_export(model, tmp):
            tokenizer_files.copy_files(tok_dir, directory)
        card = pretraining_card(
            name=name, config=model.config, parameters=sum(p.numel() for p in model.parameters()),
            run=run, state=state, tokenizer_meta=tokenizer_meta,
        )
        (tmp / "README.md").write_text(card, encoding="utf-8")
    if not (out / "model.safetensors").is_file():
        raise HanlmError("transformers did not write model.safetensors", path=str(out))
    if cfg.verify:
        difference = verify_export(model, out)
        logger.info("verified: reloaded logits differ by at most %.2e", difference)
    if cfg.push_to_hub:
        from hanlm.export.hub import push_folder

        url = push_folder(out, cfg.push_to_hub, private=cfg.private)
        logger.info("uploaded to %s", url)
    logger.info("exported step %s to %s", state.get("step"), out)
    return out


@torch.no_grad()
def verify_export(model: torch.nn.Module, out: Path, tolerance: float = 1e-5) -> float:
    """Reload with stock transformers and compare every head's logits on a fixed input."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, model.config.vocab_size, (2, 16), generator=generator)
    types = torch.zeros_like(ids)
    types[:, 8:] = 1
    difference = max((a - b).abs().max().item()
                     for a, b in objectives.export_logits(model, out, ids, types))
    if difference > tolerance:
        raise HanlmError(f"exported model differs from the checkpoint by {difference:.2e}", path=str(out))
    return difference
