"""The pretraining objectives and the model each one trains.

- `bert`: masked LM + next-sentence prediction over [CLS] A [SEP] B [SEP] pairs (Devlin et al.
  2019); the model is BertForPreTraining.
- `mlm`: masked LM alone over packed full-length sequences (RoBERTa, cramming, ModernBERT drop
  NSP); BertForMaskedLM, without the pooler and NSP head nothing would train.
- `electra`: replaced-token detection (Clark et al. 2020): a small generator (a masked LM)
  fills the masked positions and a discriminator learns, on every token, which ones it
  replaced; same packed data as `mlm`.

Where to add an objective: its name and the instances it trains on in hanlm/data/objective.py
(a writer in hanlm/data/instances.py if neither NSP pairs nor packed sequences fit), and here
how its model is built, saved and exported (the functions below).
"""

from __future__ import annotations

from typing import Any

from torch import nn


def new_model(objective: str, preset: str, *, vocab_size: int, max_positions: int, pad_id: int,
              dropout: float, attn_implementation: str, seed: int,
              generator_ratio: float = 0.25, disc_weight: float = 50.0) -> nn.Module:
    """A new pretraining model for `objective` (see hanlm/model/bert.py and electra.py)."""
    if objective == "electra":
        from hanlm.model.electra import electra_configs, new_electra_model

        disc, gen = electra_configs(preset, vocab_size, generator_ratio,
                                    max_position_embeddings=max_positions, pad_token_id=pad_id,
                                    dropout=dropout, attn_implementation=attn_implementation)
        return new_electra_model(disc, gen, seed, disc_weight=disc_weight)
    from hanlm.model.bert import build_bert_config, new_pretraining_model

    config = build_bert_config(preset, vocab_size=vocab_size, max_position_embeddings=max_positions,
                               pad_token_id=pad_id, dropout=dropout,
                               attn_implementation=attn_implementation, nsp=objective == "bert")
    return new_pretraining_model(config, seed)


def weights_module(model: nn.Module) -> nn.Module:
    """The module whose state a checkpoint holds: the Hugging Face model of BERT objectives
    (so a checkpoint is a plain BertFor... state dict), the generator and discriminator of
    ELECTRA."""
    return getattr(model, "bert", model)


def mlm_output_bias(model: nn.Module) -> nn.Parameter:
    """The bias of the masked-LM output layer (ELECTRA: the generator's)."""
    if hasattr(model, "generator"):
        return model.generator.generator_lm_head.bias
    return model.bert.cls.predictions.bias


def model_configs(model: nn.Module) -> dict[str, Any]:
    """What run.json records to rebuild the model at export."""
    configs = {"model_config": model.config.to_dict()}
    if hasattr(model, "generator"):
        configs["generator_config"] = model.generator.config.to_dict()
    return configs


def empty_model(run: dict) -> nn.Module:
    """The model a run trains, built from its run.json, to load a checkpoint into: the module
    `weights_module` saved (BertForPreTraining / BertForMaskedLM, or ELECTRA's pair)."""
    objective = run.get("objective", "bert")
    if objective == "electra":
        from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

        from hanlm.model.electra import ElectraPretrainingModel

        return ElectraPretrainingModel(
            ElectraForPreTraining(ElectraConfig.from_dict(run["model_config"])),
            ElectraForMaskedLM(ElectraConfig.from_dict(run["generator_config"])))
    from transformers import BertConfig, BertForMaskedLM, BertForPreTraining

    model_class = BertForPreTraining if objective == "bert" else BertForMaskedLM
    return model_class(BertConfig.from_dict(run["model_config"]))


GENERATOR_DIR = "generator"  # where an ELECTRA export keeps its generator (a fill-mask model)


def save_export(model: nn.Module, out) -> list:
    """Write `model` (from `empty_model`) in Hugging Face format under `out`; the directories
    written, each of which needs the tokenizer files. ELECTRA: the discriminator in `out`, the
    generator in `out/generator`."""
    if hasattr(model, "generator"):
        from hanlm.model.electra import export_electra

        export_electra(model, out, out / GENERATOR_DIR)
        return [out, out / GENERATOR_DIR]
    model.save_pretrained(out)
    return [out]


def export_logits(model: nn.Module, directory, ids, types) -> list:
    """The logits of `model` and of its export in `directory` reloaded with stock Auto classes,
    pairwise, on the same input: what `hanlm export --verify` compares."""
    from transformers import AutoModelForMaskedLM, AutoModelForPreTraining

    if hasattr(model, "generator"):
        disc = AutoModelForPreTraining.from_pretrained(directory, use_safetensors=True).eval()
        gen = AutoModelForMaskedLM.from_pretrained(directory / GENERATOR_DIR,
                                                   use_safetensors=True).eval()
        return [(model.discriminator(input_ids=ids, token_type_ids=types).logits,
                 disc(input_ids=ids, token_type_ids=types).logits),
                (model.generator(input_ids=ids, token_type_ids=types).logits,
                 gen(input_ids=ids, token_type_ids=types).logits)]
    if hasattr(model, "cls") and hasattr(model.cls, "seq_relationship"):
        reloaded = AutoModelForPreTraining.from_pretrained(directory, use_safetensors=True).eval()
        a, b = model(input_ids=ids, token_type_ids=types), reloaded(input_ids=ids, token_type_ids=types)
        return [(a.prediction_logits, b.prediction_logits),
                (a.seq_relationship_logits, b.seq_relationship_logits)]
    reloaded = AutoModelForMaskedLM.from_pretrained(directory, use_safetensors=True).eval()
    return [(model(input_ids=ids, token_type_ids=types).logits,
             reloaded(input_ids=ids, token_type_ids=types).logits)]
