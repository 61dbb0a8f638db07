"""Models as people have them: BERT, ELECTRA and RoBERTa directories in Hugging Face format with
only a ``vocab.txt`` tokenizer (the klue/bert-base layout), an XLM-R-style SentencePiece-like
(Unigram) ``tokenizer.json``, pickle weights, Hub ids; and continued pretraining from such a
directory (data build -> pretrain --init-from -> export).

Every model is built here with stock ``transformers`` classes and random weights; nothing is
downloaded. The ``sentencepiece`` package is not a hanlm dependency, so the SentencePiece kind is
a Unigram ``tokenizer.json`` made with ``tokenizers`` (what transformers converts a
``sentencepiece.bpe.model`` into).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tasks_fixtures import FIXTURES, SPECIALS, corpus
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import trainers as tok_trainers
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForPreTraining,
    ElectraConfig,
    ElectraForPreTraining,
    RobertaConfig,
    RobertaForMaskedLM,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
)

from hanlm.errors import HanlmError
from hanlm.tasks.modeling import resolve_model_dir
from hanlm.tasks.run import FinetuneConfig, finetune
from hanlm.tasks.tokenizer_loading import load_tokenizer

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64}
QUICK = {"max_steps": 2, "batch_size": 4, "eval_every": 0, "progress": False}


def _vocab(texts, size: int = 330) -> list[str]:
    """A Korean WordPiece vocabulary (no lowercasing), specials first, in a fixed order."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainer=tok_trainers.WordPieceTrainer(
        vocab_size=size, special_tokens=SPECIALS, limit_alphabet=3000))
    return SPECIALS + sorted(t for t in tok.get_vocab() if t not in SPECIALS)


def _vocab_only_tokenizer(directory: Path, tokens: list[str], **config) -> None:
    """vocab.txt + tokenizer_config.json, nothing else (klue/bert-base's layout)."""
    (directory / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


def _save(model, directory: Path, seed: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    return directory


def build_bert(directory: Path, *, do_lower_case: bool | None = False) -> Path:
    tokens = _vocab(corpus())
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertForPreTraining(BertConfig(vocab_size=len(tokens), max_position_embeddings=128,
                                              **TINY))
    _save(model, directory)
    config = {"tokenizer_class": "BertTokenizer", "model_max_length": 512}
    if do_lower_case is not None:
        config["do_lower_case"] = do_lower_case
    _vocab_only_tokenizer(directory, tokens, **config)
    return directory


def build_electra(directory: Path) -> Path:
    tokens = _vocab(corpus())
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ElectraForPreTraining(ElectraConfig(
            vocab_size=len(tokens), embedding_size=16, max_position_embeddings=128, **TINY))
    _save(model, directory)
    _vocab_only_tokenizer(directory, tokens, do_lower_case=False,
                          tokenizer_class="ElectraTokenizer")
    return directory


def build_roberta(directory: Path) -> Path:
    """klue/roberta-*'s layout: a RoBERTa (one token type, positions offset by the padding id)
    with a BERT WordPiece vocab.txt."""
    tokens = _vocab(corpus())
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = RobertaForMaskedLM(RobertaConfig(
            vocab_size=len(tokens), type_vocab_size=1, pad_token_id=tokens.index("[PAD]"),
            bos_token_id=tokens.index("[CLS]"), eos_token_id=tokens.index("[SEP]"),
            max_position_embeddings=130, **TINY))
    _save(model, directory)
    _vocab_only_tokenizer(directory, tokens, do_lower_case=False,
                          tokenizer_class="BertTokenizer")
    return directory


def build_xlmr(directory: Path) -> Path:
    """An XLM-R: Unigram (SentencePiece-style, ▁ word marks) tokenizer.json, <s> </s> <pad>."""
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(corpus(), trainer=tok_trainers.UnigramTrainer(
        vocab_size=300, special_tokens=specials, unk_token="<unk>"))
    ids = {t: tok.token_to_id(t) for t in specials}
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])])
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "XLMRobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
        "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "mask_token": "<mask>", "model_max_length": 512}), encoding="utf-8")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = XLMRobertaForMaskedLM(XLMRobertaConfig(
            vocab_size=tok.get_vocab_size(), type_vocab_size=1, pad_token_id=ids["<pad>"],
            bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], max_position_embeddings=130,
            **TINY))
    return _save(model, directory)


BUILDERS = {"bert": build_bert, "electra": build_electra, "roberta": build_roberta,
            "xlm-r": build_xlmr}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("as-distributed")
    return {kind: build(root / kind) for kind, build in BUILDERS.items()}


def _finetune(task: str, model: Path, tmp_path: Path, **options) -> Path:
    files = FIXTURES[task](tmp_path / "data")
    out = tmp_path / "run"
    finetune(FinetuneConfig(task=task, train=str(files["train"]), dev=str(files["dev"]),
                            model=str(model), out=str(out), **QUICK, **options))
    return out


def _finetune_pairs(model: Path, tmp_path: Path) -> Path:
    """KorNLI: sentence pairs in a train and a dev file."""
    files = FIXTURES["kornli"](tmp_path / "data")
    out = tmp_path / "run"
    finetune(FinetuneConfig(task="kornli", train=str(files["train"]), dev=str(files["dev"]),
                            model=str(model), out=str(out), **QUICK))
    return out


# ------------------------------------------------------------------------------ fine-tuning


@pytest.mark.parametrize("kind", BUILDERS)
def test_finetune_nsmc_on_each_kind(built, kind, tmp_path):
    out = _finetune("nsmc", built[kind], tmp_path)

    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["steps"] == 2 and "accuracy" in metrics["dev"]
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert model.config.model_type == {"xlm-r": "xlm-roberta"}.get(kind, kind)
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    assert (out / "model" / "tokenizer.json").is_file()  # a vocab.txt-only one is converted
    with torch.no_grad():
        logits = model(**tokenizer(["영화가 정말 좋다"], return_tensors="pt")).logits
    assert logits.shape == (1, 2)


def test_vocab_only_tokenizer_keeps_hangul(built):
    tokenizer = load_tokenizer(built["bert"])
    tokens = tokenizer.tokenize("영화가 정말 좋다")
    assert "[UNK]" not in tokens and any("영화" in t for t in tokens)


def test_vocab_only_tokenizer_that_lowercases_is_refused(tmp_path):
    directory = build_bert(tmp_path / "lower", do_lower_case=None)  # absent: BERT's default True

    with pytest.raises(HanlmError, match="jamo"):
        load_tokenizer(directory)


@pytest.mark.parametrize("kind", ["roberta", "xlm-r"])
def test_pair_task_on_a_single_token_type_model(built, kind, tmp_path):
    """NLI encodes sentence pairs; a RoBERTa has one token type (type 1 would crash)."""
    pair = ("영화가 좋다", "음악이 좋다")
    tokenizer = load_tokenizer(built[kind])
    assert set(tokenizer(*pair, return_token_type_ids=True)["token_type_ids"]) == {0}

    out = _finetune_pairs(built[kind], tmp_path)

    assert "accuracy" in json.loads((out / "metrics.json").read_text(encoding="utf-8"))["dev"]
    saved = AutoTokenizer.from_pretrained(out / "model")  # stock transformers, without hanlm:
    encoded = saved(*pair, return_tensors="pt")
    assert "token_type_ids" not in encoded  # the model's single type, by default
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    with torch.no_grad():
        assert model(**encoded).logits.shape == (1, 3)


def test_sentencepiece_model_without_its_package_says_what_is_missing(tmp_path):
    import importlib.util

    if importlib.util.find_spec("sentencepiece"):
        pytest.skip("sentencepiece is installed: transformers converts the model itself")
    directory = tmp_path / "xlmr"
    directory.mkdir()
    (directory / "config.json").write_text('{"model_type": "xlm-roberta"}', encoding="utf-8")
    (directory / "sentencepiece.bpe.model").write_bytes(b"\x00")

    with pytest.raises(HanlmError, match=r"sentencepiece.bpe.model.*pip install sentencepiece"):
        load_tokenizer(directory)


def test_roberta_max_len_counts_its_offset_positions(built, tmp_path):
    """Positions 0 and 1 of 130 are never a token's ([PAD] is 0: tokens count from 1)."""
    with pytest.raises(HanlmError, match="129 position"):
        _finetune("nsmc", built["roberta"], tmp_path, options=_options(max_len=130))


def _options(**kwargs):
    from hanlm.tasks.config import DataOptions

    return DataOptions(**kwargs)


# ------------------------------------------------------------------------------ pickle weights


def _pickled_bert(directory: Path) -> Path:
    build_bert(directory)
    weights = (directory / "model.safetensors")
    from safetensors.torch import load_file

    torch.save(load_file(weights), directory / "pytorch_model.bin")
    weights.unlink()
    return directory


def test_pickle_weights_are_refused_without_trust_pickle(tmp_path):
    model = _pickled_bert(tmp_path / "pickled")

    with pytest.raises(HanlmError, match="--trust-pickle"):
        _finetune("nsmc", model, tmp_path)
    assert not (model / "model.safetensors").exists()


def test_trusted_pickle_is_converted_once_to_safetensors(tmp_path, caplog):
    model = _pickled_bert(tmp_path / "pickled")
    reference = BertForPreTraining.from_pretrained(model, use_safetensors=False)

    with caplog.at_level("WARNING"):
        _finetune("nsmc", model, tmp_path / "a", options=_options(trust_pickle=True))
    assert "converting them once to safetensors" in caplog.text
    assert (model / "model.safetensors").is_file() and (model / "pytorch_model.bin").is_file()
    converted = BertForPreTraining.from_pretrained(model, use_safetensors=True)
    for (name, a), b in zip(reference.state_dict().items(), converted.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name

    caplog.clear()
    with caplog.at_level("WARNING"):  # later loads need no flag and convert nothing
        _finetune("nsmc", model, tmp_path / "b")
    assert "converting" not in caplog.text


# ------------------------------------------------------------------------------ Hub ids


def test_hub_id_offline_names_the_id_and_the_flag(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    with pytest.raises(HanlmError) as info:
        resolve_model_dir("klue/bert-base")

    message = str(info.value)
    assert "'klue/bert-base' is not a local directory" in message
    assert "downloads are off" in message and "--allow-download" in message


def test_missing_path_is_not_taken_for_a_hub_id(tmp_path):
    with pytest.raises(HanlmError, match="model directory not found"):
        resolve_model_dir(tmp_path / "nope")


# ------------------------------------------------------------------------------ continued pretraining


@pytest.fixture(scope="module")
def general_bert(tmp_path_factory) -> Path:
    """A "general" Korean BERT as downloaded: vocab.txt-only tokenizer, a WordPiece vocabulary
    of the embedded corpus."""
    from hanlm.demo import embedded_corpus

    texts = embedded_corpus().read_text(encoding="utf-8").splitlines()
    directory = tmp_path_factory.mktemp("general") / "bert"
    tokens = _vocab(texts, size=500)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertForPreTraining(BertConfig(vocab_size=len(tokens), max_position_embeddings=64,
                                              **TINY))
    _save(model, directory)
    _vocab_only_tokenizer(directory, tokens, do_lower_case=False,
                          tokenizer_class="BertTokenizer")
    return directory


def _build_data(tokenizer: Path, out: Path) -> Path:
    from hanlm.data.build import DataBuildConfig, build_dataset
    from hanlm.demo import embedded_corpus
    from hanlm.text import CorpusConfig

    return build_dataset(DataBuildConfig(corpus=[str(embedded_corpus())], tokenizer=str(tokenizer),
                                         out=str(out), max_len=32, eval_fraction=0.2, workers=1,
                                         reader=CorpusConfig()))


def test_adapt_a_general_model(general_bert, tmp_path):
    """data build --tokenizer MODEL_DIR -> pretrain --init-from MODEL_DIR -> export."""
    from hanlm.export import ExportConfig, export_model
    from hanlm.tokenizer import KoreanTokenizer
    from hanlm.train.pretrain import PretrainConfig, pretrain

    data = _build_data(general_bert, tmp_path / "data")
    tok_copy = data / "tokenizer"
    assert (tok_copy / "tokenizer.json").is_file()  # converted from vocab.txt
    assert KoreanTokenizer.load(tok_copy).fingerprint == KoreanTokenizer.load(general_bert).fingerprint
    assert AutoTokenizer.from_pretrained(general_bert).tokenize("대한민국은 민주공화국이다") == \
        Tokenizer.from_file(str(tok_copy / "tokenizer.json")).encode(
            "대한민국은 민주공화국이다", add_special_tokens=False).tokens

    run = pretrain(PretrainConfig(data=str(data), out=str(tmp_path / "run"),
                                  init_from=str(general_bert), max_steps=3, eval_every=0,
                                  precision="fp32", batch_size=4, progress=False,
                                  tensorboard=False))
    out = export_model(ExportConfig(checkpoint=str(run), out=str(tmp_path / "adapted")))

    adapted = BertForPreTraining.from_pretrained(out)
    general = BertForPreTraining.from_pretrained(general_bert)
    assert adapted.config.vocab_size == general.config.vocab_size
    # Three small steps from the general model's weights: every weight moved a little.
    start, end = general.state_dict(), adapted.state_dict()
    assert any(not torch.equal(end[n], start[n]) for n in start)
    assert max((end[n] - start[n]).abs().max().item() for n in start) < 0.01
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.tokenize("대한민국은 민주공화국이다") == \
        AutoTokenizer.from_pretrained(general_bert).tokenize("대한민국은 민주공화국이다")


def test_init_from_a_model_with_another_tokenizer_is_refused(general_bert, tiny_pretraining_data,
                                                              tmp_path):
    from hanlm.train.pretrain import PretrainConfig, pretrain

    with pytest.raises(HanlmError, match=f"rebuild the data with --tokenizer {general_bert}"):
        pretrain(PretrainConfig(data=str(tiny_pretraining_data), out=str(tmp_path / "run"),
                                init_from=str(general_bert), max_steps=1, precision="fp32",
                                progress=False, tensorboard=False))


def test_init_from_refuses_a_model_that_is_not_bert(built, tiny_pretraining_data, tmp_path):
    from hanlm.train.pretrain import PretrainConfig, pretrain

    with pytest.raises(HanlmError, match="continues a BERT"):
        pretrain(PretrainConfig(data=str(tiny_pretraining_data), out=str(tmp_path / "run"),
                                init_from=str(built["electra"]), max_steps=1, precision="fp32",
                                progress=False, tensorboard=False))


def test_data_build_refuses_a_lowercasing_vocab(tmp_path):
    directory = build_bert(tmp_path / "lower", do_lower_case=None)

    with pytest.raises(HanlmError, match="do_lower_case"):
        _build_data(directory, tmp_path / "data")
