"""bench/levers.py: hanlm's training step with one setting changed, against a reference."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import BertModel

from bench import levers
from bench.levers import FusedQKVSelfAttention, fuse_qkv
from hanlm.model.bert import build_bert_config


def test_levers_bench_times_and_profiles_a_variant_against_the_reference(tiny_pretraining_data, tmp_path):
    common = ["--data", str(tiny_pretraining_data), "--preset", "tiny", "--batch-size", "4", "--rounds", "1",
              "--batches", "1", "--only", "hanlm defaults:", "--precision", "bf16"]
    levers.main([*common, "--out", str(tmp_path / "timed.json")])
    timed = json.loads((tmp_path / "timed.json").read_text())
    assert timed["precision"] == "bf16" and [r["variant"][:14] for r in timed["rows"]] == ["reference (sdp",
                                                                                           "hanlm defaults"]
    assert timed["rows"][0]["speedup_wall"] == 1.0 and timed["rows"][1]["tokens_per_second"] > 0
    levers.main([*common, "--profile", "--out", str(tmp_path / "profile.json")])
    profiles = json.loads((tmp_path / "profile.json").read_text())["profiles"]
    assert len(profiles) == 2
    for prof in profiles.values():
        shares = prof["groups_share_of_operator_time"]
        assert shares["matmul"] > 0 and abs(sum(shares.values()) - 1) < 1e-6


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_fused_qkv_lever_computes_what_the_stock_attention_computes(attn):
    torch.manual_seed(0)
    stock = BertModel(build_bert_config("tiny", vocab_size=100, dropout=0.0, attn_implementation=attn))
    fused = fuse_qkv(copy.deepcopy(stock))
    assert sum(isinstance(m, FusedQKVSelfAttention) for m in fused.modules()) == 2
    assert not any(hasattr(m, "query") for m in fused.modules() if isinstance(m, FusedQKVSelfAttention))
    ids = torch.randint(5, 100, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # a padded row: the mask must reach the fused attention too
    outs = [m(input_ids=ids, attention_mask=mask).last_hidden_state for m in (stock, fused)]
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    for out in outs:
        out[mask.bool()].square().sum().backward()
    for layer_stock, layer_fused in zip(stock.encoder.layer, fused.encoder.layer, strict=True):
        parts = layer_stock.attention.self
        expected = torch.cat([parts.query.weight.grad, parts.key.weight.grad, parts.value.weight.grad])
        torch.testing.assert_close(layer_fused.attention.self.qkv.weight.grad, expected, atol=1e-4, rtol=1e-4)
