"""The model card (README.md) of an exported model: what it is, what it saw, how to load it."""

from __future__ import annotations

from typing import Any

from transformers import BertConfig


def _table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def pretraining_card(
    *, name: str, config: BertConfig, parameters: int, run: dict, state: dict,
    tokenizer_meta: dict,
) -> str:
    data = run.get("data_meta", {})
    settings = data.get("settings", {})
    corpus = settings.get("corpus", [])
    corpus_lines = "\n".join(f"- `{c['path'].rsplit('/', 1)[-1]}` ({c['bytes']:,} bytes)" for c in corpus)
    evaluation = state.get("eval") or {}
    metrics = "\n".join(
        f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in evaluation.items()
    ) or "- (no held-out evaluation was recorded)"
    kiwi = tokenizer_meta.get("pretokenize") == "kiwi"
    usage_note = (
        "\n**Pre-tokenization:** this tokenizer was trained on text split into morphemes with "
        "kiwipiepy. Apply the same split before tokenizing: "
        f"{tokenizer_meta.get('usage', 'see hanlm_tokenizer.json')}\n"
        if kiwi else ""
    )
    kind = _OBJECTIVES[run.get("objective", "bert")]
    return f"""---
language: ko
library_name: transformers
pipeline_tag: {kind['pipeline']}
tags: [{kind['tag']}, korean, hanlm]
---

# {name}

A Korean {kind['what']} pretrained with [hanlm](https://pypi.org/project/hanlm/)
({kind['objective']}). It is a stock Hugging Face `{kind['class']}`: no hanlm import is needed
to use it.

## Architecture
{_table([
    ("layers", config.num_hidden_layers),
    ("hidden size", config.hidden_size),
    ("attention heads", config.num_attention_heads),
    ("intermediate size", config.intermediate_size),
    ("max positions", config.max_position_embeddings),
    ("parameters", f"{parameters / 1e6:.1f}M"),
])}

## Tokenizer
WordPiece, {config.vocab_size:,} tokens, Unicode NFC normalisation, no lower-casing or accent
stripping (Hangul syllables are never decomposed into jamo). Pre-tokenization:
{tokenizer_meta.get('pretokenize', 'none')}.
{usage_note}
## Pretraining data
{data.get('documents', '?'):,} documents, {data.get('chars', 0):,} characters, sequences of
{data.get('max_len', '?')} tokens; {data.get('splits', {}).get('train', {}).get('instances', '?'):,}
training instances.
{corpus_lines}

## Training
{_table([
    ("optimizer steps", state.get('step')),
    ("samples seen", state.get('loop', {}).get('samples_seen', state.get('samples_seen'))),
    ("hanlm version", run.get('hanlm_version')),
])}

## Held-out metrics at the end of pretraining
{metrics}

## How to load
{kind['usage'].format(name=name)}

## Limitations
A model pretrained on a small corpus knows that corpus, not Korean at large. Fine-tune and
evaluate it on your task before relying on it.
"""


def finetuned_card(card: str | None, *, name: str, evaluations: list[dict]) -> str:
    """The card of a fine-tuned model to share: its own (``hanlm finetune`` writes the task,
    data, dev metrics and command) titled `name`, with the usage examples loading `name`, and
    the scores of `hanlm evaluate` runs added."""
    if card is None:
        card = ("---\nlibrary_name: transformers\ntags: [hanlm, korean]\n---\n\n# model\n\n"
                "A fine-tuned model (its directory held no hanlm model card).\n")
    lines = card.replace("PATH/TO/THIS/DIRECTORY", name).splitlines()
    title = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    if title is not None:
        lines[title:title + 1] = [f"# {name}", "", lines[title][2:].strip() + "."]
    if evaluations:
        section = _evaluation_section(evaluations)
        use = next((i for i, line in enumerate(lines) if line == "## Use"), len(lines))
        lines[use:use] = section
    return "\n".join(lines).rstrip("\n") + "\n"


def _evaluation_section(evaluations: list[dict]) -> list[str]:
    lines = ["## Evaluations (`hanlm evaluate`, official definitions, percent)", "",
             "| data | examples | metric | value |", "|---|---|---|---|"]
    for result in evaluations:
        data = str(result.get("data", "?")).replace("\\", "/").rsplit("/", 1)[-1]
        if result.get("split_dev"):
            data += f" (held-out part, --split-dev {result['split_dev']})"
        for metric, value in result["metrics"].items():
            shown = f"{value:.2f}" if isinstance(value, float) else value
            lines.append(f"| `{data}` | {result.get('examples', '?')} | {metric} | {shown} |")
    return lines + [""]


_FILL_MASK = """```python
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

tokenizer = AutoTokenizer.from_pretrained("{name}")
model = AutoModelForMaskedLM.from_pretrained("{name}")
fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)
print(fill("대한민국은 민주[MASK]이다."))
```"""

# What the card says of each pretraining objective's export (hanlm/model/objectives.py).
_OBJECTIVES = {
    "bert": {"what": "BERT", "tag": "bert", "class": "BertForPreTraining",
             "pipeline": "fill-mask",
             "objective": "masked language modelling and next-sentence prediction",
             "usage": _FILL_MASK + "\n`AutoModelForPreTraining` loads the NSP head as well."},
    "mlm": {"what": "BERT", "tag": "bert", "class": "BertForMaskedLM", "pipeline": "fill-mask",
            "objective": "masked language modelling on packed sequences, no next-sentence "
                         "prediction", "usage": _FILL_MASK},
    "electra": {
        "what": "ELECTRA discriminator", "tag": "electra", "class": "ElectraForPreTraining",
        "pipeline": "feature-extraction",
        "objective": "replaced-token detection against a masked-language-model generator",
        "usage": """Fine-tune it as any ELECTRA (`AutoModelForSequenceClassification`,
`AutoModelForTokenClassification`, `AutoModelForQuestionAnswering`). Its generator, a small
masked language model, is in `generator/`:

""" + _FILL_MASK.replace('from_pretrained("{name}")', 'from_pretrained("{name}/generator")')},
}
