"""hanlm.tokenizer.kiwi_fast: the tasks' tokenizer for a kiwi vocabulary cuts words exactly as
pretraining did, keeps offsets into the original text, and saves as a stock tokenizer."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from hanlm.tasks.tokenizer_loading import load_tokenizer
from hanlm.tokenizer import KoreanTokenizer, TokenizerTrainConfig, train_tokenizer
from hanlm.tokenizer.kiwi_fast import KiwiTokenizerFast

REPO = Path(__file__).resolve().parents[1]
CONSTITUTION = REPO / "hanlm" / "resources" / "constitution.txt"
TEXTS = [
    "대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다.",
    "봤었는데 재밌었어요ㅋㅋ 😀 진짜 최고!!",
    "韓國語를\t배웠다고 했다",  # Hanja: the normalizer spaces them out; a tab
    "대통령은\x00 국가의 원수이다",  # a control character the normalizer drops
    unicodedata.normalize("NFD", "헌법재판소는 법관의 자격을 가진"),  # NFD input
    "  앞뒤  공백과   여러 칸  ",
    "",
]


@pytest.fixture(scope="module")
def kiwi_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kiwi")
    return train_tokenizer(TokenizerTrainConfig(corpus=[str(CONSTITUTION)], out=str(out / "tok"),
                                                vocab_size=600, pretokenize="kiwi"))


def test_loaded_for_tasks_it_gives_the_pretraining_ids(kiwi_dir):
    tokenizer = load_tokenizer(kiwi_dir)
    assert isinstance(tokenizer, KiwiTokenizerFast)
    expected = [ids.tolist() for ids, _ in KoreanTokenizer.load(kiwi_dir).encode_words(TEXTS)]
    got = tokenizer(TEXTS, add_special_tokens=False)["input_ids"]
    assert got == expected
    # without the morpheme cuts the ids differ: the test can tell the two apart
    plain = AutoTokenizer.from_pretrained(kiwi_dir)(TEXTS[:2], add_special_tokens=False)
    assert plain["input_ids"] != expected[:2]


def test_text_between_added_tokens_is_cut_the_same(kiwi_dir):
    # added tokens ([E1], as relation extraction adds) are split off before pre-tokenization:
    # the text after one is a piece no batch prepared, analysed on its own
    tokenizer = load_tokenizer(kiwi_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": ["[E1]"]})
    expected = KoreanTokenizer.load(kiwi_dir).encode_words([TEXTS[0]])[0][0].tolist()
    [marker, *rest] = tokenizer("[E1]" + TEXTS[0], add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(marker) == "[E1]" and rest == expected
    assert tokenizer._kiwi._cuts == {}  # nothing kept between calls


def test_offsets_point_into_the_original_text(kiwi_dir):
    tokenizer = load_tokenizer(kiwi_dir)
    enc = tokenizer(TEXTS[:4], return_offsets_mapping=True, add_special_tokens=False)
    for text, ids, offsets in zip(TEXTS, enc["input_ids"], enc["offset_mapping"], strict=False):
        pieces = [text[s:e] for s, e in offsets]
        tokens = [t.removeprefix("##") for t in tokenizer.convert_ids_to_tokens(ids)]
        assert [p for p, t in zip(pieces, tokens, strict=True) if t != "[UNK]"] == \
               [t for t in tokens if t != "[UNK]"]
    starts = [s for s, _ in enc["offset_mapping"][0]]
    assert TEXTS[0].index("에게") in starts  # a morpheme start inside an eojeol


def test_pairs_and_windows_are_cut_too(kiwi_dir):
    tokenizer = load_tokenizer(kiwi_dir)
    kt = KoreanTokenizer.load(kiwi_dir)
    enc = tokenizer(TEXTS[0], TEXTS[1])
    [a, b] = [ids.tolist() for ids, _ in kt.encode_words(TEXTS[:2])]
    assert enc["input_ids"] == [kt.cls_id, *a, kt.sep_id, *b, kt.sep_id]
    windows = tokenizer([TEXTS[0]], truncation=True, max_length=8, stride=2,
                        return_overflowing_tokens=True)["input_ids"]
    assert len(windows) > 1 and windows[0][1:7] == a[:6]


def test_saved_as_a_stock_tokenizer_that_reloads_with_kiwi(kiwi_dir, tmp_path):
    tokenizer = load_tokenizer(kiwi_dir)
    tokenizer.save_pretrained(tmp_path)
    spec = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    assert spec["pre_tokenizer"]["type"] == "BertPreTokenizer"
    assert json.loads((tmp_path / "hanlm_tokenizer.json").read_text(encoding="utf-8"))[
        "pretokenize"] == "kiwi"
    again = load_tokenizer(tmp_path)
    assert isinstance(again, KiwiTokenizerFast)
    assert again(TEXTS)["input_ids"] == tokenizer(TEXTS)["input_ids"]
    assert len(again) == len(tokenizer) and again.pad_token_id == tokenizer.pad_token_id


def test_finetune_and_evaluate_keep_the_kiwi_cut(tmp_path):
    """KLUE-NER end to end on a tiny BERT with a kiwi vocabulary: the fine-tuned model directory
    says kiwi and its card tells stock users to split first; evaluate reads it back with the
    cut and reproduces the training-time scores; predicted entities are spans of the text."""
    import sys

    import torch
    from transformers import BertConfig, BertForPreTraining

    from hanlm import config
    from hanlm.tasks.run import EvaluateConfig, evaluate
    from hanlm.tokenizer import format as tokenizer_files

    sys.path.insert(0, str(Path(__file__).parent))
    from tasks_fixtures import corpus, read_jsonl, run_finetune, write_klue_ner

    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(corpus()) + "\n", encoding="utf-8")
    tok = train_tokenizer(TokenizerTrainConfig(corpus=[str(text)], out=str(tmp_path / "tok"),
                                               vocab_size=300, pretokenize="kiwi"))
    model_dir = tmp_path / "base"
    torch.manual_seed(0)
    BertForPreTraining(BertConfig(
        vocab_size=len(json.loads((tok / "tokenizer.json").read_text())["model"]["vocab"]),
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128)).save_pretrained(model_dir)
    tokenizer_files.copy_files(tok, model_dir)

    files = write_klue_ner(tmp_path / "data")
    out = tmp_path / "run"
    summary = run_finetune("klue-ner", files, model_dir, out)
    meta = json.loads((out / "model" / "hanlm_tokenizer.json").read_text(encoding="utf-8"))
    assert meta["pretokenize"] == "kiwi"
    assert "kiwi_split" in (out / "model" / "README.md").read_text(encoding="utf-8")
    assert isinstance(load_tokenizer(out / "model"), KiwiTokenizerFast)
    for prediction in read_jsonl(out / "predictions.jsonl"):
        for entity in prediction["entities"]:
            assert prediction["text"][entity["start"]:entity["end"]] == entity["text"]

    metrics_out = tmp_path / "eval.json"
    evaluate(config.build(EvaluateConfig, {
        "task": "klue-ner", "data": str(files["dev"]), "model": str(out), "max_len": 64,
        "precision": "fp32", "output": str(metrics_out)}))
    result = json.loads(metrics_out.read_text(encoding="utf-8"))
    assert result["metrics"] == pytest.approx(summary["dev"], abs=1e-6)
