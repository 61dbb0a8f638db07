"""The pretraining model: `transformers`' BertForPreTraining (objective `bert`: MLM + NSP) or
BertForMaskedLM (objective `mlm`, no NSP head or pooler) with a sparse MLM loss.

The architecture is the stock Hugging Face BERT (export is then a plain `save_pretrained`).
What hanlm adds is the loss: Hugging Face computes the 30k-way vocabulary projection on every
position and then ignores the 85% that are not masked; at small sizes that projection is most of
the model's FLOPs. `PretrainingModel.forward` gathers the masked positions first and projects
only those, which gives the same loss and gradients (tests/test_model.py checks this against
the plain model) for a fraction of the work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertForMaskedLM, BertForPreTraining

from hanlm.errors import HanlmError
from hanlm.model.presets import PRESETS


def build_bert_config(
    preset: str,
    *,
    vocab_size: int,
    max_position_embeddings: int = 512,
    pad_token_id: int = 0,
    dropout: float = 0.1,
    attn_implementation: str = "sdpa",
    nsp: bool = True,
) -> BertConfig:
    if preset not in PRESETS:
        raise HanlmError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=p.hidden,
        num_hidden_layers=p.layers,
        num_attention_heads=p.heads,
        intermediate_size=p.intermediate,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=pad_token_id,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        architectures=["BertForPreTraining" if nsp else "BertForMaskedLM"],
    )
    config._attn_implementation = attn_implementation
    return config


@dataclass
class PretrainingOutput:
    loss: torch.Tensor
    mlm_loss: torch.Tensor
    nsp_loss: torch.Tensor
    mlm_correct: torch.Tensor
    mlm_count: torch.Tensor
    mlm_token_losses: torch.Tensor  # detached, one per predicted position (for diagnostics)
    nsp_correct: torch.Tensor
    nsp_count: torch.Tensor


class PretrainingModel(nn.Module):
    """Wraps BertForPreTraining (MLM + NSP) or BertForMaskedLM (MLM only); `forward` returns the
    loss on a sparse batch.

    A wrapper (rather than calling `bert.bert` and `bert.cls` from the loop) so that DDP,
    Accelerate and DeepSpeed see one module whose forward produces the loss. The MLM-only model
    has no pooler and no NSP head at all, rather than unused ones: DDP refuses parameters that
    get no gradient.
    """

    def __init__(self, bert: BertForPreTraining | BertForMaskedLM):
        super().__init__()
        self.bert = bert
        self.nsp = isinstance(bert, BertForPreTraining)

    @property
    def config(self) -> BertConfig:
        return self.bert.config

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        mlm_positions: torch.Tensor,
        mlm_labels: torch.Tensor,
        nsp_labels: torch.Tensor | None = None,
    ) -> PretrainingOutput:
        """`mlm_positions` index the flattened [batch*seq] positions; `mlm_labels` their ids;
        `nsp_labels` are read only by the MLM + NSP model."""
        encoded = self.bert.bert(
            input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask
        )
        hidden = encoded.last_hidden_state.flatten(0, 1).index_select(0, mlm_positions)
        mlm_logits = self.bert.cls.predictions(hidden)
        token_losses = F.cross_entropy(mlm_logits.float(), mlm_labels, reduction="none")
        mlm_loss = token_losses.mean()
        if self.nsp:
            nsp_logits = self.bert.cls.seq_relationship(encoded.pooler_output)
            nsp_loss = F.cross_entropy(nsp_logits.float(), nsp_labels)
            nsp_correct = (nsp_logits.detach().argmax(-1) == nsp_labels).sum()
            nsp_count = torch.tensor(nsp_labels.numel())
        else:
            nsp_loss = nsp_correct = nsp_count = torch.zeros((), device=mlm_loss.device)
        with torch.no_grad():
            # "the label's logit is the largest": amax is ~15x faster than argmax on CPU, where
            # argmax of the [masked x vocab] logits took 6% of a BERT-tiny step (ties, which
            # argmax would give to the first index, count as correct; they do not occur in fp32).
            label_logits = mlm_logits.gather(1, mlm_labels[:, None]).squeeze(1)
            mlm_correct = (label_logits >= mlm_logits.amax(-1)).sum()
        return PretrainingOutput(
            loss=mlm_loss + nsp_loss,
            mlm_loss=mlm_loss.detach(),
            nsp_loss=nsp_loss.detach(),
            mlm_correct=mlm_correct,
            mlm_count=torch.tensor(mlm_labels.numel()),
            mlm_token_losses=token_losses.detach(),
            nsp_correct=nsp_correct,
            nsp_count=nsp_count,
        )


def set_dropout(model: nn.Module, p: float) -> None:
    """Set every dropout of `model` (hidden states, and attention, which reads `dropout.p`) to `p`
    without touching its config: pretraining can run without dropout while the exported config
    keeps the rate that fine-tuning reads from it."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p


def new_pretraining_model(config: BertConfig, seed: int) -> PretrainingModel:
    """A new model of the architecture `config` names (BertForPreTraining or BertForMaskedLM)."""
    torch.manual_seed(seed)
    if config.architectures == ["BertForMaskedLM"]:
        return PretrainingModel(BertForMaskedLM(config))
    return PretrainingModel(BertForPreTraining(config))


def load_pretraining_model(directory: str | Path) -> BertForPreTraining:
    """Load an exported or checkpointed BertForPreTraining (safetensors only)."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise HanlmError("not a model directory (no config.json)", path=str(directory))
    return BertForPreTraining.from_pretrained(directory, use_safetensors=True)
