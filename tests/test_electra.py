"""ELECTRA pretraining: the sparse generator loss and the discriminator loss must equal the stock
Hugging Face losses, the two halves share one embeddings module, and the export loads with the
Auto classes."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    ElectraForMaskedLM,
    ElectraForPreTraining,
)

from hanlm.errors import HanlmError
from hanlm.model.electra import (
    ElectraPretrainingModel,
    electra_configs,
    export_electra,
    load_electra_model,
    new_electra_model,
)

VOCAB = 300
MASK = 4


def _batch(batch=4, length=24, seed=0):
    """A collator-like batch: (masked ids, types, attention, positions, labels, original ids).

    Of the chosen positions, most hold [MASK], one keeps its token and one holds a random token,
    as the collator's 80/10/10 split does."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, length), generator=g)
    attention = torch.ones_like(ids)
    attention[1, 18:] = 0
    ids[1, 18:] = 0
    types = torch.zeros_like(ids)
    types[:, 10:] = 1
    chosen = torch.rand((batch, length), generator=g) < 0.25
    chosen &= attention.bool()
    chosen[:, 0] = False
    flat_chosen = chosen.flatten()
    positions = torch.nonzero(flat_chosen).squeeze(1)
    masked = ids.clone().flatten()
    masked[positions] = MASK
    masked[positions[0]] = ids.flatten()[positions[0]]  # kept
    masked[positions[1]] = 7 if ids.flatten()[positions[1]] != 7 else 8  # random
    labels = ids.flatten()[positions]
    return masked.view_as(ids), types, attention, positions, labels, ids


def _model(attn="eager", embedding_size=None, ratio=0.25, seed=0, disc_weight=50.0):
    disc, gen = electra_configs("tiny", VOCAB, generator_ratio=ratio, dropout=0.0,
                                embedding_size=embedding_size, attn_implementation=attn)
    model = new_electra_model(disc, gen, seed)
    model.disc_weight = disc_weight
    return model


def _run(model, batch, seed=0):
    ids, types, attention, positions, labels, _ = batch
    torch.manual_seed(seed)
    return model(input_ids=ids, token_type_ids=types, attention_mask=attention,
                 mlm_positions=positions, mlm_labels=labels, nsp_labels=torch.zeros(4).long())


def _disc_input(model, batch, seed=0):
    """The discriminator's input_ids in a forward pass, captured with a hook."""
    seen = {}

    def hook(module, args, kwargs):
        seen["ids"] = kwargs["input_ids"].clone()

    handle = model.discriminator.electra.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        out = _run(model, batch, seed)
    finally:
        handle.remove()
    return out, seen["ids"]


def test_configs_scale_the_generator_and_share_the_embedding_width():
    disc, gen = electra_configs("tiny", VOCAB)
    assert (disc.hidden_size, disc.num_attention_heads, disc.intermediate_size) == (128, 2, 512)
    assert (gen.hidden_size, gen.num_attention_heads, gen.intermediate_size) == (32, 1, 128)
    assert gen.num_hidden_layers == disc.num_hidden_layers == 2
    assert gen.embedding_size == disc.embedding_size == 128
    disc, gen = electra_configs("base", VOCAB, generator_ratio=0.5, max_position_embeddings=1024,
                                pad_token_id=3)
    assert (gen.hidden_size, gen.num_attention_heads, gen.intermediate_size) == (384, 6, 1536)
    assert gen.max_position_embeddings == disc.max_position_embeddings == 1024
    assert gen.pad_token_id == disc.pad_token_id == 3
    assert disc.architectures == ["ElectraForPreTraining"]
    assert gen.architectures == ["ElectraForMaskedLM"]
    with pytest.raises(HanlmError, match="unknown preset"):
        electra_configs("huge", VOCAB)
    with pytest.raises(HanlmError, match="generator_ratio"):
        electra_configs("tiny", VOCAB, generator_ratio=0.0)


def test_mismatched_embedding_sizes_are_refused():
    disc, _ = electra_configs("tiny", VOCAB)
    _, gen = electra_configs("tiny", VOCAB, embedding_size=64)
    with pytest.raises(HanlmError, match="embedding_size"):
        ElectraPretrainingModel(ElectraForPreTraining(disc), ElectraForMaskedLM(gen))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("embedding_size", [None, 64])  # 64: the discriminator projects too
def test_sparse_generator_loss_and_gradients_match_transformers(attn, embedding_size):
    # disc_weight 0: the total loss is the generator's, so every gradient is the generator's.
    model = _model(attn, embedding_size, disc_weight=0.0)
    reference = ElectraForMaskedLM(model.generator.config)
    reference.load_state_dict(model.generator.state_dict())
    ids, types, attention, positions, labels, _ = batch = _batch()
    dense = torch.full((ids.numel(),), -100)
    dense[positions] = labels

    ref_out = reference(input_ids=ids, token_type_ids=types, attention_mask=attention,
                        labels=dense.view_as(ids))
    ref_out.loss.backward()
    out = _run(model, batch)
    out.loss.backward()

    torch.testing.assert_close(out.loss, ref_out.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.mlm_loss, ref_out.loss, rtol=1e-5, atol=1e-6)
    ref_grads = dict(reference.named_parameters())
    ours = dict(model.generator.named_parameters())
    assert ours.keys() == ref_grads.keys()
    for name, p in ours.items():
        torch.testing.assert_close(p.grad, ref_grads[name].grad, rtol=1e-4, atol=1e-6, msg=name)
    assert int(out.mlm_count) == positions.numel()
    assert out.mlm_token_losses.shape == (positions.numel(),)
    dense_logits = ref_out.logits.flatten(0, 1)[positions]
    assert int(out.mlm_correct) == int((dense_logits.argmax(-1) == labels).sum())


def _force_generator_to_sample(model, token):
    """Make the generator's softmax put all its mass on `token`."""
    with torch.no_grad():
        model.generator.generator_lm_head.bias[token] = 1e4


def test_discriminator_loss_matches_transformers_and_ignores_unchanged_samples():
    model = _model()
    ids, types, attention, positions, labels, original = batch = _batch(seed=1)
    # Half the masked positions originally hold token 9, which the generator will sample: those
    # are not replaced (label 0), the others are (label 1).
    token = 9
    original = original.clone().flatten()
    original[positions[::2]] = token
    original = original.view_as(ids)
    labels = original.flatten()[positions]
    batch = (ids, types, attention, positions, labels, original)
    _force_generator_to_sample(model, token)

    out, replaced = _disc_input(model, batch)
    assert bool((out.sampled_ids == token).all())
    expected_input = original.flatten().index_fill(0, positions, token).view_as(ids)
    assert torch.equal(replaced, expected_input)

    rtd_labels = (replaced != original).long()
    assert 0 < int(rtd_labels.sum()) < positions.numel()  # both classes at the masked positions
    reference = ElectraForPreTraining(model.discriminator.config)
    reference.load_state_dict(model.discriminator.state_dict())
    ref = reference(input_ids=replaced, attention_mask=attention, token_type_ids=types,
                    labels=rtd_labels)
    torch.testing.assert_close(out.rtd_loss, ref.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, out.mlm_loss + 50.0 * ref.loss, rtol=1e-5, atol=1e-5)
    # Labelling every masked position as replaced would give another loss: the test can fail.
    every = torch.zeros(ids.numel(), dtype=torch.long).index_fill(0, positions, 1).view_as(ids)
    wrong = reference(input_ids=replaced, attention_mask=attention, token_type_ids=types,
                      labels=every).loss.detach()
    assert abs(float(wrong) - float(ref.loss.detach())) > 1e-4

    active = attention.bool()
    assert int(out.rtd_count) == int(active.sum())
    correct = ((ref.logits > 0).long() == rtd_labels)[active].sum()
    assert int(out.rtd_correct) == int(correct)
    assert int(out.replaced_count) == int(rtd_labels.sum())
    assert float(out.replaced_fraction) == pytest.approx(int(rtd_labels.sum()) / positions.numel())

    # The discriminator's gradient, away from the shared embeddings, is disc_weight x the
    # reference's: the generator's loss does not reach it.
    out.loss.backward()
    ref.loss.backward()
    ref_grads = dict(reference.named_parameters())
    for name, p in model.discriminator.named_parameters():
        if name.startswith("electra.embeddings."):
            continue
        torch.testing.assert_close(p.grad, 50.0 * ref_grads[name].grad, rtol=1e-4, atol=1e-5,
                                   msg=name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_samples_replace_every_chosen_position_and_nothing_else(seed):
    model = _model()
    ids, types, attention, positions, labels, original = batch = _batch(seed=seed)
    out, replaced = _disc_input(model, batch, seed=seed)
    chosen = torch.zeros(ids.numel(), dtype=torch.bool)
    chosen[positions] = True
    chosen = chosen.view_as(ids)
    # Outside the chosen positions the discriminator sees the collator's (= original) tokens.
    assert torch.equal(replaced[~chosen], ids[~chosen])
    assert torch.equal(replaced[~chosen], original[~chosen])
    # At every chosen position, [MASK], kept or random alike, it sees the generator's sample.
    assert torch.equal(replaced.flatten()[positions], out.sampled_ids)
    assert out.sampled_ids.shape == labels.shape


def test_sampling_follows_the_generator_distribution():
    # Two equally likely tokens: both are sampled, roughly half the time each; nothing else is.
    model = _model()
    with torch.no_grad():
        model.generator.generator_lm_head.bias[11] = 1e4
        model.generator.generator_lm_head.bias[12] = 1e4
    seen = torch.cat([_run(model, _batch(seed=s), seed=s).sampled_ids for s in range(8)])
    assert set(seen.tolist()) == {11, 12}
    assert 0.3 < float((seen == 11).float().mean()) < 0.7


def test_embeddings_are_one_module_that_both_losses_train():
    model = _model()
    d, g = model.discriminator, model.generator
    assert g.electra.embeddings is d.electra.embeddings
    shared = d.electra.embeddings.word_embeddings.weight
    assert g.generator_lm_head.weight is shared
    assert g.get_input_embeddings().weight is shared
    assert g.electra.embeddings.position_embeddings.weight is d.electra.embeddings.position_embeddings.weight
    assert model.config is d.config
    # parameters() counts the shared ones once.
    unique = {id(p) for p in model.parameters()}
    assert len(unique) == len(list(model.parameters()))
    assert len(unique) == (len(list(d.parameters())) + len(list(g.parameters()))
                           - len(list(d.electra.embeddings.parameters())))

    # A step on the generator's loss alone moves the discriminator's embeddings and nothing
    # else of the discriminator.
    before = {n: p.detach().clone() for n, p in d.named_parameters()}
    ids, types, attention, positions, labels, _ = _batch()
    logits = model.generator_logits(ids, types, attention, positions)
    torch.nn.functional.cross_entropy(logits, labels).backward()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    for name, p in d.named_parameters():
        moved = not torch.equal(p, before[name])
        if name in ("electra.embeddings.word_embeddings.weight",
                    "electra.embeddings.position_embeddings.weight",
                    "electra.embeddings.token_type_embeddings.weight"):
            assert moved, name
        elif not name.startswith("electra.embeddings."):
            assert not moved, name


def test_checkpoint_state_round_trips_and_stays_shared(tmp_path):
    # What hanlm's checkpoint code does: clone every tensor of state_dict() into safetensors,
    # then load_state_dict into a freshly built model.
    model = _model(seed=0)
    state = model.state_dict()
    assert "generator.electra.embeddings.word_embeddings.weight" in state
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()},
              tmp_path / "model.safetensors")
    fresh = _model(seed=1)
    fresh.load_state_dict(load_file(tmp_path / "model.safetensors"))
    assert fresh.generator.electra.embeddings is fresh.discriminator.electra.embeddings
    assert fresh.generator.generator_lm_head.weight is fresh.discriminator.electra.embeddings.word_embeddings.weight
    batch = _batch()
    torch.testing.assert_close(_run(fresh, batch).loss, _run(model, batch).loss)


def test_export_loads_with_the_auto_classes_and_gives_the_same_logits(tmp_path):
    model = _model(embedding_size=64).eval()
    with torch.no_grad():  # a non-zero head bias, so a lost bias would show
        model.generator.generator_lm_head.bias.normal_()
    disc_dir, gen_dir = tmp_path / "discriminator", tmp_path / "generator"
    export_electra(model, disc_dir, gen_dir)
    for directory, arch in ((disc_dir, "ElectraForPreTraining"), (gen_dir, "ElectraForMaskedLM")):
        config = json.loads((directory / "config.json").read_text())
        assert config["model_type"] == "electra"
        assert config["architectures"] == [arch]
        assert (directory / "model.safetensors").is_file()

    ids, types, attention, *_ = _batch()
    kwargs = {"input_ids": ids, "token_type_ids": types, "attention_mask": attention}
    with torch.no_grad():
        disc = AutoModelForPreTraining.from_pretrained(disc_dir, use_safetensors=True).eval()
        assert type(disc) is ElectraForPreTraining
        torch.testing.assert_close(disc(**kwargs).logits, model.discriminator(**kwargs).logits)
        gen = AutoModelForMaskedLM.from_pretrained(gen_dir, use_safetensors=True).eval()
        assert type(gen) is ElectraForMaskedLM
        assert gen.generator_lm_head.weight is gen.electra.embeddings.word_embeddings.weight
        torch.testing.assert_close(gen(**kwargs).logits, model.generator(**kwargs).logits)
        assert gen(**kwargs).logits.shape == (*ids.shape, VOCAB)
        torch.testing.assert_close(gen.electra.embeddings.word_embeddings.weight,
                                   disc.electra.embeddings.word_embeddings.weight)

        base, info = AutoModel.from_pretrained(disc_dir, output_loading_info=True)
        assert not info["missing_keys"]
        torch.testing.assert_close(base(**kwargs).last_hidden_state,
                                   model.discriminator.electra(**kwargs).last_hidden_state)
    for auto in (AutoModelForSequenceClassification, AutoModelForTokenClassification,
                 AutoModelForQuestionAnswering):
        head, info = auto.from_pretrained(disc_dir, output_loading_info=True)
        assert not [k for k in info["missing_keys"] if k.startswith("electra.")], auto
        torch.testing.assert_close(head.electra.embeddings.word_embeddings.weight,
                                   model.discriminator.electra.embeddings.word_embeddings.weight)

    reloaded = load_electra_model(disc_dir, gen_dir)
    assert reloaded.generator.electra.embeddings is reloaded.discriminator.electra.embeddings
    batch = _batch()
    torch.testing.assert_close(_run(reloaded.eval(), batch).loss, _run(model, batch).loss)


def test_a_few_steps_on_one_batch_lower_the_loss():
    model = _model(seed=0)
    batch = _batch(seed=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses, mlm = [], []
    for step in range(8):
        out = _run(model, batch, seed=step)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.loss.detach()))
        mlm.append(float(out.mlm_loss))
    assert sum(losses[-2:]) < 0.85 * sum(losses[:2]), losses
    assert sum(mlm[-2:]) < 0.85 * sum(mlm[:2]), mlm


def test_sample_rows_draws_from_each_rows_distribution():
    from hanlm.model.electra import sample_rows

    torch.manual_seed(0)
    probs = torch.tensor([[0.0, 0.2, 0.0, 0.8], [0.5, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0]])
    draws = torch.stack([sample_rows(probs) for _ in range(4000)])  # [draws, rows]
    for row in range(3):
        freq = torch.bincount(draws[:, row], minlength=4).float() / len(draws)
        assert (freq[probs[row] == 0] == 0).all()  # never a token of probability 0
        assert torch.allclose(freq, probs[row], atol=0.03)
