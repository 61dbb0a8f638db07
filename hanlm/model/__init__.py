"""BERT models: `transformers`' BertForPreTraining built from a preset, plus the sparse MLM loss."""

from hanlm.model.bert import PretrainingModel, build_bert_config, load_pretraining_model
from hanlm.model.presets import PRESETS, Preset

__all__ = ["PRESETS", "Preset", "PretrainingModel", "build_bert_config", "load_pretraining_model"]
