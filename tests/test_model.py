"""The sparse MLM loss must equal the plain Hugging Face loss: speed never changes learning."""

import pytest
import torch
from transformers import BertForPreTraining

from hanlm.model.bert import PretrainingModel, build_bert_config


def _batch(vocab=300, batch=4, length=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, length), generator=g)
    attention = torch.ones_like(ids)
    attention[1, 18:] = 0
    ids[1, 18:] = 0
    types = torch.zeros_like(ids)
    types[:, 10:] = 1
    chosen = torch.rand((batch, length), generator=g) < 0.2
    chosen &= attention.bool()
    chosen[:, 0] = False
    labels = torch.full_like(ids, -100)
    labels[chosen] = ids[chosen]
    masked = ids.clone()
    masked[chosen] = 4
    nsp = torch.tensor([0, 1, 1, 0])
    return masked, types, attention, labels, nsp


@pytest.mark.parametrize("attn", ["sdpa", "eager"])  # hanlm pretrains with eager on CPU, SDPA on CUDA
def test_sparse_loss_and_gradients_match_transformers(attn):
    config = build_bert_config("tiny", vocab_size=300, dropout=0.0, attn_implementation=attn)
    torch.manual_seed(0)
    reference = BertForPreTraining(config)
    ours = PretrainingModel(BertForPreTraining(config))
    ours.bert.load_state_dict(reference.state_dict())
    ids, types, attention, labels, nsp = _batch()

    ref_out = reference(input_ids=ids, token_type_ids=types, attention_mask=attention,
                        labels=labels, next_sentence_label=nsp)
    ref_out.loss.backward()
    flat = labels.flatten()
    positions = torch.nonzero(flat != -100).squeeze(1)
    out = ours(input_ids=ids, token_type_ids=types, attention_mask=attention,
               mlm_positions=positions, mlm_labels=flat[positions], nsp_labels=nsp)
    out.loss.backward()

    torch.testing.assert_close(out.loss, ref_out.loss, rtol=1e-5, atol=1e-6)
    ref_grads = dict(reference.named_parameters())
    for name, p in ours.bert.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[name].grad, rtol=1e-4, atol=1e-6, msg=name)
    assert int(out.mlm_count) == positions.numel()


def test_mlm_accuracy_counts_the_positions_whose_label_has_the_top_logit():
    config = build_bert_config("tiny", vocab_size=300, dropout=0.0)
    torch.manual_seed(0)
    model = PretrainingModel(BertForPreTraining(config))
    ids, types, attention, labels, nsp = _batch(batch=4, length=24, seed=3)
    flat = labels.flatten()
    positions = torch.nonzero(flat != -100).squeeze(1)
    targets = flat[positions].clone()
    with torch.no_grad():
        hidden = model.bert.bert(input_ids=ids, token_type_ids=types, attention_mask=attention)
        logits = model.bert.cls.predictions(hidden.last_hidden_state.flatten(0, 1)[positions])
    # Make half of the labels the model's own prediction, so the count is neither 0 nor all.
    targets[::2] = logits.argmax(-1)[::2]
    expected = int((logits.argmax(-1) == targets).sum())
    out = model(input_ids=ids, token_type_ids=types, attention_mask=attention,
                mlm_positions=positions, mlm_labels=targets, nsp_labels=nsp)
    assert 0 < expected < positions.numel()
    assert int(out.mlm_correct) == expected
