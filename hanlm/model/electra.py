"""ELECTRA pretraining (Clark et al. 2020, "ELECTRA: Pre-training Text Encoders as Discriminators
Rather Than Generators"): a small masked-LM generator fills the masked positions with samples
and a discriminator learns, at every token, whether it was replaced.

Both halves are stock `transformers` classes, so export is a plain `save_pretrained`: the
discriminator is an `ElectraForPreTraining` (what fine-tuning loads, with any Auto head), the
generator an `ElectraForMaskedLM` (usable with `pipeline("fill-mask")`).

The generator and the discriminator share one embeddings module (token, position and token-type
embeddings and their LayerNorm), as in the paper; the generator's output layer is tied to the
shared word embeddings as Hugging Face ties it. The embeddings have the discriminator's width
(`embedding_size`); a generator narrower than that projects them with its own
`embeddings_project`, as the published ELECTRA generators do.

As in hanlm's BERT (`hanlm.model.bert`), the generator's vocabulary projection runs only at the
masked positions: same loss and gradients as the dense Hugging Face loss (tests/test_electra.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

from hanlm.errors import HanlmError
from hanlm.model.presets import PRESETS

DEFAULT_GENERATOR_RATIO = 0.25  # the paper finds generators 1/4 to 1/2 of the discriminator best
DEFAULT_DISC_WEIGHT = 50.0  # the paper's lambda


def electra_configs(
    preset: str,
    vocab_size: int,
    generator_ratio: float = DEFAULT_GENERATOR_RATIO,
    max_position_embeddings: int = 512,
    pad_token_id: int = 0,
    dropout: float = 0.1,
    *,
    embedding_size: int | None = None,
    attn_implementation: str = "sdpa",
) -> tuple[ElectraConfig, ElectraConfig]:
    """(discriminator config, generator config) for a hanlm preset.

    The discriminator has the preset's size. The generator keeps its layer count (as the paper
    does) and scales hidden size, intermediate size and heads by `generator_ratio`. Both use the
    same `embedding_size` (default: the discriminator's hidden size), since they share the
    embeddings.
    """
    if preset not in PRESETS:
        raise HanlmError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    if not 0.0 < generator_ratio <= 1.0:
        raise HanlmError(f"generator_ratio must be in (0, 1], got {generator_ratio}")
    p = PRESETS[preset]
    embedding_size = embedding_size or p.hidden
    gen_hidden = max(1, round(p.hidden * generator_ratio))
    gen_heads = max(1, round(p.heads * generator_ratio))
    if gen_hidden % gen_heads:
        raise HanlmError(
            f"generator_ratio {generator_ratio} gives a generator of hidden size {gen_hidden} "
            f"that {gen_heads} attention heads do not divide; choose another ratio"
        )

    def config(hidden: int, heads: int, intermediate: int, architecture: str) -> ElectraConfig:
        c = ElectraConfig(
            vocab_size=vocab_size,
            embedding_size=embedding_size,
            hidden_size=hidden,
            num_hidden_layers=p.layers,
            num_attention_heads=heads,
            intermediate_size=intermediate,
            max_position_embeddings=max_position_embeddings,
            pad_token_id=pad_token_id,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            architectures=[architecture],
        )
        c._attn_implementation = attn_implementation
        return c

    disc = config(p.hidden, p.heads, p.intermediate, "ElectraForPreTraining")
    gen = config(gen_hidden, gen_heads, max(1, round(p.intermediate * generator_ratio)),
                 "ElectraForMaskedLM")
    return disc, gen


@dataclass
class ElectraOutput:
    loss: torch.Tensor  # generator loss + disc_weight * discriminator loss
    mlm_loss: torch.Tensor  # generator, detached
    mlm_correct: torch.Tensor
    mlm_count: torch.Tensor
    mlm_token_losses: torch.Tensor  # detached, one per masked position
    rtd_loss: torch.Tensor  # discriminator (replaced token detection), detached
    rtd_correct: torch.Tensor  # non-padding tokens the discriminator classified correctly
    rtd_count: torch.Tensor  # non-padding tokens
    replaced_fraction: torch.Tensor  # of the masked positions, the share the generator changed
    replaced_count: torch.Tensor  # the same as a count (sums exactly over micro-batches)
    sampled_ids: torch.Tensor  # the generator's sample at each masked position
    rtd_weight: float = 50.0  # disc_weight, for logs that add the losses up as `loss` does


class ElectraPretrainingModel(nn.Module):
    """Generator + discriminator; `forward` returns the ELECTRA loss on a sparse MLM batch.

    Takes the batches of `hanlm.data.batches.Collator` unchanged (`nsp_labels` is accepted and
    ignored: ELECTRA has no sentence-pair objective).
    """

    def __init__(self, discriminator: ElectraForPreTraining, generator: ElectraForMaskedLM,
                 disc_weight: float = DEFAULT_DISC_WEIGHT):
        super().__init__()
        d, g = discriminator.config, generator.config
        for field in ("embedding_size", "vocab_size", "max_position_embeddings", "type_vocab_size",
                      "pad_token_id"):
            if getattr(d, field) != getattr(g, field):
                raise HanlmError(
                    f"generator and discriminator must agree on {field} to share embeddings "
                    f"({getattr(g, field)} != {getattr(d, field)})"
                )
        self.discriminator = discriminator
        self.generator = generator
        self.disc_weight = disc_weight
        share_embeddings(discriminator, generator)

    @property
    def config(self) -> ElectraConfig:
        return self.discriminator.config

    def generator_logits(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                         attention_mask: torch.Tensor, mlm_positions: torch.Tensor) -> torch.Tensor:
        """The generator's vocabulary logits at `mlm_positions` only ([masked, vocab])."""
        g = self.generator
        hidden = g.electra(
            input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask
        ).last_hidden_state
        hidden = hidden.flatten(0, 1).index_select(0, mlm_positions)
        return g.generator_lm_head(g.generator_predictions(hidden))

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        mlm_positions: torch.Tensor,
        mlm_labels: torch.Tensor,
        nsp_labels: torch.Tensor | None = None,
    ) -> ElectraOutput:
        """`mlm_positions` index the flattened [batch*seq] positions; `mlm_labels` their ids."""
        del nsp_labels
        logits = self.generator_logits(input_ids, token_type_ids, attention_mask, mlm_positions)
        logits32 = logits.float()
        token_losses = F.cross_entropy(logits32, mlm_labels, reduction="none")
        mlm_loss = token_losses.mean()

        with torch.no_grad():
            label_logits = logits32.gather(1, mlm_labels[:, None]).squeeze(1)
            mlm_correct = (label_logits >= logits32.amax(-1)).sum()
            # Sampling is discrete: the discriminator's loss sends no gradient to the generator.
            sampled = sample_rows(F.softmax(logits32, dim=-1))
            # Every chosen position gets a sample, whatever the collator put there (the [MASK],
            # random or kept 80/10/10 split only concerns the generator's input).
            replaced_ids = (
                input_ids.flatten().index_copy(0, mlm_positions, sampled).view_as(input_ids)
            )
            is_replaced = sampled != mlm_labels
            rtd_labels = torch.zeros(input_ids.numel(), device=input_ids.device)
            rtd_labels = rtd_labels.index_copy(0, mlm_positions, is_replaced.float())
            rtd_labels = rtd_labels.view_as(input_ids)
            active = attention_mask.bool()

        d = self.discriminator
        hidden = d.electra(
            input_ids=replaced_ids, token_type_ids=token_type_ids, attention_mask=attention_mask
        ).last_hidden_state
        disc_logits = d.discriminator_predictions(hidden).float()
        active_logits = disc_logits[active]
        active_labels = rtd_labels[active]
        rtd_loss = F.binary_cross_entropy_with_logits(active_logits, active_labels)

        with torch.no_grad():
            rtd_correct = ((active_logits > 0) == active_labels.bool()).sum()
            replaced_count = is_replaced.sum()
        return ElectraOutput(
            loss=mlm_loss + self.disc_weight * rtd_loss,
            mlm_loss=mlm_loss.detach(),
            mlm_correct=mlm_correct,
            mlm_count=torch.tensor(mlm_labels.numel()),
            mlm_token_losses=token_losses.detach(),
            rtd_loss=rtd_loss.detach(),
            rtd_correct=rtd_correct,
            rtd_count=active.sum(),
            replaced_fraction=replaced_count.float() / max(mlm_labels.numel(), 1),
            replaced_count=replaced_count,
            sampled_ids=sampled,
            rtd_weight=self.disc_weight,
        )


def share_embeddings(discriminator: ElectraForPreTraining, generator: ElectraForMaskedLM) -> None:
    """Make the generator use the discriminator's embeddings module, and tie the generator's
    output layer to the shared word embeddings (what Hugging Face's own tying does within one
    model; replacing the module would otherwise leave the head tied to the discarded one)."""
    generator.electra.embeddings = discriminator.electra.embeddings
    generator.generator_lm_head.weight = discriminator.electra.embeddings.word_embeddings.weight


def new_electra_model(disc_config: ElectraConfig, gen_config: ElectraConfig, seed: int,
                      disc_weight: float = DEFAULT_DISC_WEIGHT) -> ElectraPretrainingModel:
    torch.manual_seed(seed)
    discriminator = ElectraForPreTraining(disc_config)
    generator = ElectraForMaskedLM(gen_config)
    return ElectraPretrainingModel(discriminator, generator, disc_weight)


def export_electra(model: ElectraPretrainingModel, discriminator_dir: str | Path,
                   generator_dir: str | Path) -> None:
    """Write the discriminator (`ElectraForPreTraining`) and the generator (`ElectraForMaskedLM`)
    as two self-contained Hugging Face directories (config.json, model.safetensors); each holds
    its own copy of the shared embeddings. Tokenizer files are the caller's."""
    for module, directory in ((model.discriminator, discriminator_dir),
                              (model.generator, generator_dir)):
        # The generator's head shares storage with the embeddings; transformers drops the tied
        # key when saving and re-ties it when loading, so no copy is needed here.
        module.save_pretrained(Path(directory), safe_serialization=True)


def load_electra_model(discriminator_dir: str | Path, generator_dir: str | Path,
                       disc_weight: float = DEFAULT_DISC_WEIGHT) -> ElectraPretrainingModel:
    """Rebuild the pretraining model from `export_electra`'s directories (safetensors only).

    The embeddings are the discriminator's: the generator's copy is discarded (they are equal
    in an export of a shared model)."""
    for directory in (discriminator_dir, generator_dir):
        if not (Path(directory) / "config.json").is_file():
            raise HanlmError("not a model directory (no config.json)", path=str(directory))
    discriminator = ElectraForPreTraining.from_pretrained(discriminator_dir, use_safetensors=True)
    generator = ElectraForMaskedLM.from_pretrained(generator_dir, use_safetensors=True)
    return ElectraPretrainingModel(discriminator, generator, disc_weight)


def sample_rows(probs: torch.Tensor) -> torch.Tensor:
    """One token id per row of `probs` [rows, vocab], drawn from that row's distribution.

    By inverting each row's cumulative distribution at one uniform number: `torch.multinomial`
    draws an exponential variate for every entry instead (vocab-many per row, single-threaded on
    a CPU), which made sampling half of an ELECTRA-tiny training step there (172 of 330 ms,
    batch 32 x 128, 8,000-piece vocabulary)."""
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[0], 1, device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=probs.shape[-1] - 1)
