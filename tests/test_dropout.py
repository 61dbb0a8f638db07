"""hanlm.model.dropout: the CPU dropout draws the same distribution as nn.Dropout, scales and
back-propagates as it does, and leaves a model as saveable as before."""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from hanlm.model.bert import set_dropout
from hanlm.model.dropout import CpuDropout, drop_threshold, keep_mask, keep_scale, use_cpu_dropout


def test_every_lane_of_the_draw_drops_at_the_rate():
    # Four 16-bit values come from each 64-bit draw: each position among the four must drop at
    # p (a draw that left the sign bit 0 would never drop the fourth).
    torch.manual_seed(0)
    for p in (0.1, 0.5):
        keep = keep_mask(torch.zeros(400_000, 4), p)
        dropped = 1 - keep.float().mean(0)
        tolerance = 5 * (p * (1 - p) / 400_000) ** 0.5
        assert torch.all((dropped - p).abs() < tolerance), (p, dropped)


def test_rate_is_p_rounded_to_16_bits_and_the_scale_inverts_the_keep_probability():
    assert drop_threshold(0.1) == 6554
    assert abs(keep_scale(0.1) * (1 - 6554 / 65536) - 1) < 1e-12


def test_kept_values_are_scaled_as_torch_scales_them():
    torch.manual_seed(1)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(64, 40, 32).to(dtype)
        dropout = CpuDropout(0.1).train()
        torch.manual_seed(2)
        out = dropout(x)
        torch.manual_seed(2)
        keep = keep_mask(x, 0.1)
        assert torch.equal(out == 0, ~keep | (x == 0))
        assert torch.equal(out[keep], (x[keep] * keep_scale(0.1)).to(dtype))
        assert out.dtype == dtype


def test_expectation_is_kept():
    torch.manual_seed(3)
    out = CpuDropout(0.2).train()(torch.ones(1_000_000))
    assert abs(out.mean().item() - 1) < 0.005


def test_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(4)
    x = torch.randn(16, 8, 24, requires_grad=True)
    weight = torch.randn(16, 8, 24)
    out = CpuDropout(0.3).train()(x)
    (out * weight).sum().backward()
    kept = out != 0
    expected = torch.where(kept, weight * keep_scale(0.3), torch.zeros_like(weight))
    torch.testing.assert_close(x.grad, expected)


def test_same_seed_same_mask_other_seed_other_mask():
    x = torch.ones(10_000)
    dropout = CpuDropout(0.1).train()
    masks = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        masks.append(dropout(x) == 0)
    assert torch.equal(masks[0], masks[1])
    assert not torch.equal(masks[0], masks[2])


def test_identity_in_evaluation_and_at_rate_zero_and_pytorchs_at_the_edges():
    x = torch.randn(4, 8)
    assert torch.equal(CpuDropout(0.1).eval()(x), x)
    assert torch.equal(CpuDropout(0.0).train()(x), x)
    assert torch.equal(CpuDropout(1.0).train()(x), torch.zeros_like(x))
    torch.manual_seed(7)
    stock = nn.Dropout(1 - 1e-6).train()(x)  # a rate 16 bits round to 1: PyTorch's draw
    torch.manual_seed(7)
    assert torch.equal(CpuDropout(1 - 1e-6).train()(x), stock)


def _tiny_classifier() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=2,
                        attn_implementation="eager")
    return BertForSequenceClassification(config)


def test_swapped_model_computes_and_saves_as_the_stock_one(tmp_path):
    model = _tiny_classifier()
    ids = torch.randint(3, 50, (3, 10))
    before = model.eval()(input_ids=ids).logits
    stock_dropouts = sum(type(m) is nn.Dropout for m in model.modules())
    assert use_cpu_dropout(model) == stock_dropouts > 0
    assert not any(type(m) is nn.Dropout for m in model.modules())
    torch.testing.assert_close(model(input_ids=ids).logits, before, rtol=0, atol=0)

    set_dropout(model, 0.25)  # code that sets `.p` reaches the swapped modules
    assert {m.p for m in model.modules() if isinstance(m, CpuDropout)} == {0.25}
    model.train()
    model(input_ids=ids, labels=torch.tensor([0, 1, 0])).loss.backward()

    model.save_pretrained(tmp_path)
    reloaded = BertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert not any(isinstance(m, CpuDropout) for m in reloaded.modules())
    torch.testing.assert_close(reloaded(input_ids=ids).logits, before)
