"""Loading a model directory for a task head, and writing the fine-tuned model directory.

Input: any Hugging Face BERT directory (``config.json``, ``model.safetensors``, tokenizer
files), e.g. what ``hanlm export`` writes. Pickle weights (``pytorch_model.bin``) can run code
when loaded, so they are refused unless ``--trust-pickle``. The output ``model/`` directory
loads with stock ``transformers`` (``AutoModelFor…``, ``pipeline``) without hanlm.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PreTrainedModel,
)

from hanlm import atomic
from hanlm.errors import HanlmError
from hanlm.model.weights import check_weights
from hanlm.tasks.base import HEAD_PIPELINES

logger = logging.getLogger(__name__)

HEADS: dict[str, Any] = {
    "sequence-classification": AutoModelForSequenceClassification,
    "token-classification": AutoModelForTokenClassification,
    "question-answering": AutoModelForQuestionAnswering,
}



def resolve_model_dir(path: str | Path, *, allow_download: bool | None = None) -> Path:
    """A model directory, a hanlm run directory holding one in ``model/``, or a Hugging Face
    Hub id (``klue/bert-base``) when downloads are allowed.

    `allow_download` None follows the environment: downloads are on unless ``HF_HUB_OFFLINE``
    is set, which the ``hanlm`` command does unless the verb's download option is given.
    """
    name = str(path)
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    if (path / "model" / "config.json").is_file():
        return path / "model"
    if path.exists():
        raise HanlmError("not a Hugging Face model directory (no config.json)", path=str(path))
    if not _HUB_ID.fullmatch(name):
        raise HanlmError("model directory not found", path=name)
    if allow_download is None:
        allow_download = not _hub_offline()
    if not allow_download:
        raise HanlmError(
            f"'{name}' is not a local directory; downloads are off: pass --allow-download to "
            "fetch it from the Hugging Face Hub (or set HF_HUB_OFFLINE=0)")
    return download_model(name)


# A Hub repo id ("name" or "owner/name"), as huggingface_hub validates them.
_HUB_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}")
# What a model needs of a Hub repo: config, weights (safetensors), tokenizer files of any kind.
_HUB_FILES = ["config.json", "*.safetensors", "model.safetensors.index.json",
              "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "*.model"]
_HUB_PICKLES = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def download_model(repo_id: str) -> Path:
    """The local snapshot (in the Hugging Face cache) of the files a model needs; pickle
    weights only when the repo has no safetensors (loading them still needs --trust-pickle)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        local = Path(snapshot_download(repo_id, allow_patterns=_HUB_FILES))
        if not any(local.glob("*.safetensors")):
            local = Path(snapshot_download(repo_id, allow_patterns=_HUB_FILES + _HUB_PICKLES))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
        raise HanlmError(f"cannot download '{repo_id}' from the Hugging Face Hub: "
                         f"{' '.join(str(e).split())[:300]}") from None
    if not (local / "config.json").is_file():
        raise HanlmError(f"'{repo_id}' on the Hugging Face Hub is not a transformers model "
                         "(no config.json)")
    logger.info("%s: using the Hub snapshot in %s", repo_id, local)
    return local


def load_model(directory: Path, head: str, model_kwargs: dict[str, Any], *,
               trust_pickle: bool = False, max_len: int | None = None,
               trained_head: bool = False) -> PreTrainedModel:
    """Load a head for `directory`; refuse inputs longer than its position embeddings.

    `trained_head`: `directory` should already hold the task head (evaluate, predict), so a
    head that had to be initialised is a warning rather than the expected start of finetune.
    """
    safe = check_weights(directory, trust_pickle)
    # As in pretraining (docs/BENCHMARKS.md, bench/levers.py): on CPU eager attention is as fast
    # as SDPA on padded batches and faster on the unpadded ones that length grouping makes.
    attention = "sdpa" if torch.cuda.is_available() else "eager"
    try:
        with _load_report_held():
            model, info = HEADS[head].from_pretrained(
                directory, use_safetensors=safe, attn_implementation=attention,
                output_loading_info=True, **model_kwargs)
    except (OSError, ValueError) as e:
        raise HanlmError(f"cannot load the model: {e}", path=str(directory)) from None
    _report_loading(model, info, directory, trained_head=trained_head)
    positions = usable_positions(model.config)
    if max_len is not None and positions is not None and max_len > positions:
        raise HanlmError(f"--max-len {max_len} is longer than the model's {positions} position "
                         f"embeddings; use --max-len {positions} or less", path=str(directory))
    return model


def usable_positions(config: Any) -> int | None:
    """How many tokens fit: RoBERTa-style models number positions from padding_idx + 1, so
    two of their (usually 514) position embeddings are never used for tokens."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and getattr(config, "model_type", "") in _OFFSET_POSITIONS:
        positions -= (getattr(config, "pad_token_id", None) or 0) + 1
    return positions


_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "camembert", "xlm-roberta-xl",
                               "roberta-prelayernorm"})


class _HoldLoadReport(logging.Filter):
    """Keeps transformers' "LOAD REPORT" warning (a table of every missing, unexpected and
    re-initialised key) from being emitted; `_report_loading` says what matters instead."""

    def __init__(self):
        super().__init__()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in record.getMessage():
            self.held.append(record)
            return False
        return True


@contextlib.contextmanager
def _load_report_held():
    """Hold back the load report of the `from_pretrained` calls inside (transformers 5 logs it
    as one warning of ``transformers.modeling_utils``; no argument turns it off). If loading
    fails, the report is logged after all: transformers' error message points at it."""
    transformers_logger = logging.getLogger("transformers.modeling_utils")
    hold = _HoldLoadReport()
    transformers_logger.addFilter(hold)
    failed = True
    try:
        yield
        failed = False
    finally:
        transformers_logger.removeFilter(hold)
        if failed:
            for record in hold.held:
                transformers_logger.handle(record)


def _report_loading(model: PreTrainedModel, info: dict[str, Any], directory: Path, *,
                    trained_head: bool) -> None:
    """One line for the task head initialised here (info for finetune, a warning when the
    model should have had it), and a warning for any encoder weight that did not load."""
    prefix = model.base_model_prefix + "."
    mismatched = {key: (saved, wanted) for key, saved, wanted in info["mismatched_keys"]}
    order = {key: i for i, key in enumerate(model.state_dict())}

    def ordered(keys) -> list[str]:
        return sorted(keys, key=lambda k: (order.get(k, len(order)), k))

    new_head = ordered(k for k in (*info["missing_keys"], *mismatched) if not k.startswith(prefix))
    if new_head:
        note = " (the checkpoint's had another shape)" if set(new_head) & set(mismatched) else ""
        if trained_head:
            logger.warning("%s holds no trained task head: %s newly initialised%s, so its "
                           "predictions are random (is it a fine-tuned model?)", directory,
                           ", ".join(new_head), note)
        else:
            logger.info("new head initialised: %s%s", ", ".join(new_head), note)
    missing = ordered(k for k in info["missing_keys"] if k.startswith(prefix))
    if missing:
        logger.warning("%s: encoder weights missing from the checkpoint, newly initialised: %s",
                       directory, _some(missing))
    reshaped = ordered(k for k in mismatched if k.startswith(prefix))
    if reshaped:
        logger.warning("%s: encoder weights of another shape in the checkpoint, newly "
                       "initialised: %s", directory, _some(
                           f"{k} {tuple(mismatched[k][0])} -> {tuple(mismatched[k][1])}"
                           for k in reshaped))
    # Heads of other tasks (the pretraining heads `cls.*`) are left out on purpose, and so is
    # the pooler by the token-level heads, which have none.
    no_pooler = getattr(model.base_model, "pooler", None) is None
    unused = sorted(k for k in info["unexpected_keys"] if k.startswith(prefix)
                    and not (no_pooler and k.startswith(prefix + "pooler.")))
    if unused:
        logger.warning("%s: encoder weights in the checkpoint that the model does not use: %s",
                       directory, _some(unused))
    ignored = sorted(set(info["unexpected_keys"]) - set(unused))
    if ignored:
        logger.debug("%s: weights not used by this head: %s", directory, _some(ignored))


def _some(items, limit: int = 8) -> str:
    items = list(items)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def task_kwargs_from_model(directory: Path) -> dict[str, Any]:
    """Labels stored in a fine-tuned model's config.json (for evaluate/predict)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(directory)
    id2label = {int(k): v for k, v in config.id2label.items()}
    return {"labels": tuple(id2label[i] for i in sorted(id2label)),
            "problem_type": getattr(config, "problem_type", None)}


def save_model_dir(model: PreTrainedModel, tokenizer: Any, final: Path, card: str) -> None:
    """Write ``final`` atomically: safetensors weights, config, tokenizer, README.md."""
    with atomic.directory(final) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(card, encoding="utf-8")


def model_card(*, task: Any, base_model: str, train_file: str, dev_file: str | None,
               split: str | None, metrics: dict[str, float] | None, step: int,
               total_steps: int, command: str, tokenizer_usage: str = "") -> str:
    """A short Hugging Face model card: what it does, on what data, how well, how made
    (``tokenizer_usage``: what a stock pipeline must do to the text first, if anything)."""
    pipeline_tag = HEAD_PIPELINES[task.head]
    lines = [
        "---",
        "language: ko",
        "library_name: transformers",
        f"pipeline_tag: {pipeline_tag}",
        "tags: [hanlm, bert, korean]",
        "---",
        "",
        f"# {task.name} — fine-tuned with hanlm",
        "",
        f"Task: **{task.name}** ({task.describe()}), head `{HEADS[task.head].__name__}`.",
        f"Base model: `{base_model}`.",
        f"Training data: `{train_file}`" + (f" (split at run time: {split})" if split else "."),
        f"Evaluation data: `{dev_file or train_file}`." if (dev_file or split) else
        "No evaluation data.",
        f"Steps: {step} of {total_steps} (best checkpoint).",
        "",
    ]
    if metrics:
        lines += ["## Dev metrics (official definitions, percent)", "",
                  "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" if isinstance(v, float) else f"| {k} | {v} |"
                  for k, v in metrics.items()]
        lines.append("")
    usage = getattr(task, "usage_note", lambda: "")()
    lines += ["## Use", "", "```python", *_USAGE.get(pipeline_tag, _pipeline_usage(pipeline_tag)),
              "```", ""]
    lines += [usage, ""] if usage else []
    lines += [tokenizer_usage, ""] if tokenizer_usage else []
    lines += [
        "## How it was made", "",
        "```",
        command,
        "```",
        "",
    ]
    return "\n".join(lines)


def _pipeline_usage(pipeline_tag: str) -> list[str]:
    return ["from transformers import pipeline",
            f'nlp = pipeline("{pipeline_tag}", model="PATH/TO/THIS/DIRECTORY")']


# transformers 5 removed the "question-answering" pipeline; the model loads with the auto class.
_USAGE: dict[str, list[str]] = {
    "question-answering": [
        "import torch",
        "from transformers import AutoModelForQuestionAnswering, AutoTokenizer",
        'tok = AutoTokenizer.from_pretrained("PATH/TO/THIS/DIRECTORY")',
        'model = AutoModelForQuestionAnswering.from_pretrained("PATH/TO/THIS/DIRECTORY")',
        'question, context = "대한민국의 수도는?", "서울은 대한민국의 수도이다."',
        "enc = tok(question, context, return_offsets_mapping=True, return_tensors=\"pt\")",
        "offsets = enc.pop(\"offset_mapping\")[0]",
        "with torch.no_grad():",
        "    out = model(**enc)",
        "ctx = torch.tensor([s == 1 for s in enc.sequence_ids(0)])",
        "start = out.start_logits[0].masked_fill(~ctx, -1e9).argmax()",
        "end = start + out.end_logits[0][start:].masked_fill(~ctx[start:], -1e9)[:30].argmax()",
        "print(context[offsets[start][0]:offsets[end][1]])",
    ],
}
