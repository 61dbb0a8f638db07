"""Upload an exported directory to the Hugging Face Hub (or any server speaking its API), and
share a fine-tuned model directory (`hanlm export RUN/model --push-to-hub REPO`).

The token comes from the usual places (`HF_TOKEN`, `huggingface-cli login`); the server from
`HF_ENDPOINT` (default: the public Hub), read when `push_folder` is called. This is the only
network access hanlm makes, and only when asked (`--push-to-hub`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hanlm.errors import HanlmError

logger = logging.getLogger(__name__)

_HINTS = {
    401: "not authenticated: set HF_TOKEN or run `hf auth login`",
    403: "check that the token may write to this namespace",
}


def push_folder(folder: Path, repo_id: str, *, private: bool = False) -> str:
    import httpx2  # huggingface_hub's HTTP client; its transport errors are not OSErrors
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    endpoint = os.environ.get("HF_ENDPOINT") or None
    api = HfApi(endpoint=endpoint)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type="model",
            commit_message="Upload model exported by hanlm",
        )
    except HfHubHTTPError as e:
        raise HanlmError(f"upload to '{repo_id}' failed: {_describe_http_error(e)}") from None
    except (httpx2.TransportError, ConnectionError) as e:
        raise HanlmError(
            f"upload to '{repo_id}' failed: cannot reach {api.endpoint} ({_one_line(str(e) or type(e).__name__)})"
        ) from None
    except OSError as e:  # e.g. a file in the folder that cannot be read
        raise HanlmError(f"upload to '{repo_id}' failed: {_one_line(str(e))}", path=str(folder)) from None
    return str(getattr(commit, "commit_url", None) or commit)


def _describe_http_error(e) -> str:
    """`HfHubHTTPError`'s own text spans several lines; keep the status, server message and a hint."""
    response = getattr(e, "response", None)
    status = getattr(response, "status_code", None)
    if status is None:
        return _one_line(str(e))
    text = f"HTTP {status} {getattr(response, 'reason_phrase', '') or ''}".rstrip()
    if e.server_message:
        text += f": {_one_line(e.server_message)}"
    if status in _HINTS:
        text += f" ({_HINTS[status]})"
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------------ fine-tuned models

# The heads `hanlm finetune` writes (architectures in config.json), all stock transformers.
_TASK_HEADS = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")


def finetuned_model_dir(path: str | Path) -> Path | None:
    """The fine-tuned model directory that `path` names (``RUN/model``, or a finetune run
    ``RUN``), or None: then it is a pretraining run or checkpoint, for `export_model`."""
    path = Path(path)
    for candidate in (path, path / "model"):
        try:
            config = json.loads((candidate / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        architectures = config.get("architectures") or [] if isinstance(config, dict) else []
        if any(str(a).endswith(_TASK_HEADS) for a in architectures):
            return candidate
    return None


def export_finetuned(model_dir: Path, cfg: Any) -> Path:
    """`hanlm export RUN/model [--out DIR] [--push-to-hub REPO]`: the fine-tuned model with a
    card for sharing (the task, data, dev metrics and command of the run, plus every
    `hanlm evaluate` score kept in the run directory); written to ``--out`` when given, else
    staged in a temporary directory for the upload only."""
    from hanlm.model.weights import check_weights

    check_weights(model_dir, trust_pickle=False)  # a shared model carries safetensors only
    if not cfg.out and not cfg.push_to_hub:
        raise HanlmError("nothing to do: give --out DIR, --push-to-hub REPO, or both",
                         path=str(model_dir))
    name = cfg.name or cfg.push_to_hub or Path(cfg.out).name
    if cfg.out:
        out = Path(cfg.out)
        if out.resolve() == model_dir.resolve():
            raise HanlmError("--out is the model directory itself", path=str(out))
        if out.exists() and any(out.iterdir()) and not cfg.overwrite:
            raise HanlmError("output directory is not empty (use --overwrite)", path=str(out))
        _write_shared(model_dir, out, name, cfg.verify)
        if cfg.push_to_hub:
            _push(out, cfg)
        logger.info("exported the fine-tuned model %s to %s", model_dir, out)
        return out
    with tempfile.TemporaryDirectory(prefix="hanlm-share-") as tmp:
        staged = Path(tmp) / "model"
        _write_shared(model_dir, staged, name, cfg.verify)
        _push(staged, cfg)
    return model_dir


def _write_shared(model_dir: Path, out: Path, name: str, verify: bool) -> None:
    from hanlm import atomic
    from hanlm.export.card import finetuned_card

    card_path = model_dir / "README.md"
    card = card_path.read_text(encoding="utf-8") if card_path.is_file() else None
    with atomic.directory(out) as tmp:
        for item in sorted(model_dir.iterdir()):
            if item.is_file() and item.name != "README.md":
                shutil.copy2(item, tmp / item.name)
        (tmp / "README.md").write_text(
            finetuned_card(card, name=name, evaluations=_evaluations(model_dir)),
            encoding="utf-8")
    if verify:
        difference = verify_finetuned(model_dir, out)
        logger.info("verified: the copy reloads with stock transformers (outputs differ by "
                    "%.1e)", difference)


def _push(folder: Path, cfg: Any) -> None:
    url = push_folder(folder, cfg.push_to_hub, private=cfg.private)
    logger.info("uploaded to %s", url)


def _evaluations(model_dir: Path) -> list[dict]:
    """The `hanlm evaluate` results kept next to the model (``metrics-TASK-FILE.json``, where
    evaluate writes them by default: the run directory of ``RUN/model``)."""
    found = []
    for path in sorted(model_dir.resolve().parent.glob("metrics-*.json")):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("%s: unreadable, left out of the card", path)
            continue
        if isinstance(result, dict) and isinstance(result.get("metrics"), dict):
            found.append(result)
    return found


def verify_finetuned(source: Path, copy: Path, tolerance: float = 1e-6) -> float:
    """Load the copy as stock transformers does (its head class, its tokenizer) and compare its
    outputs with the source's on one Korean sentence pair."""
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(copy)
    head = getattr(transformers, (config.architectures or [""])[0], None)
    if head is None:
        raise HanlmError(f"transformers has no class {config.architectures}", path=str(copy))
    tokenizer = transformers.AutoTokenizer.from_pretrained(copy)
    inputs = tokenizer("서울은 대한민국의 수도이다.", "대한민국의 수도는?", return_tensors="pt")
    with torch.no_grad():
        a = head.from_pretrained(source, use_safetensors=True).eval()(**inputs).to_tuple()
        b = head.from_pretrained(copy, use_safetensors=True).eval()(**inputs).to_tuple()
    difference = max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))
    if difference > tolerance:
        raise HanlmError(f"the exported model differs from {source} by {difference:.2e}",
                         path=str(copy))
    return difference
