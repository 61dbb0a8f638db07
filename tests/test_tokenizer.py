"""hanlm.tokenizer: the Korean traps, transformers compatibility, word starts, kiwi, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from hanlm.errors import HanlmError
from hanlm.text import CorpusConfig
from hanlm.tokenizer import KoreanTokenizer, TokenizerTrainConfig, kiwi_split, train_tokenizer
from hanlm.tokenizer.format import new_tokenizer
from hanlm.tokenizer.pretokenize import kiwi_pieces

REPO = Path(__file__).resolve().parents[1]
CONSTITUTION = REPO / "hanlm" / "resources" / "constitution.txt"
SENTENCE = "대한민국은 민주공화국이다."
RARE = "똠"  # appears once in the training corpus, at a word start


def _corpus(tmp_path: Path) -> str:
    text = CONSTITUTION.read_text(encoding="utf-8")
    path = tmp_path / "corpus.txt"
    path.write_text(text + f"\n\n{RARE}얌꿍 먹은 KBS 기자\n", encoding="utf-8")
    return str(path)


def _train(tmp_path: Path, vocab_size: int = 500, **kwargs) -> Path:
    out = str(tmp_path / "tok")
    return train_tokenizer(
        TokenizerTrainConfig(corpus=[_corpus(tmp_path)], out=out, vocab_size=vocab_size, **kwargs)
    )


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def tok(tok_dir) -> KoreanTokenizer:
    return KoreanTokenizer.load(tok_dir)


@pytest.fixture(scope="module")
def kiwi_tok(tmp_path_factory) -> KoreanTokenizer:
    return KoreanTokenizer.load(_train(tmp_path_factory.mktemp("kiwi"), pretokenize="kiwi"))


def _raw(directory: Path) -> Tokenizer:
    return Tokenizer.from_file(str(directory / "tokenizer.json"))


# ---------------------------------------------------------------- Korean traps


def test_hangul_never_becomes_jamo(tok_dir):
    raw = _raw(tok_dir)
    jamo = [t for t in raw.get_vocab() if any("\u1100" <= c <= "\u11ff" for c in t)]
    assert jamo == []
    ids = raw.encode(SENTENCE).ids
    assert raw.decode(ids) == SENTENCE
    assert "대" in raw.encode(SENTENCE).tokens


def test_rare_syllable_is_in_the_vocabulary_in_both_positions(tok, tok_dir):
    vocab = _raw(tok_dir).get_vocab()
    assert RARE in vocab and "##" + RARE in vocab
    for ids, _ in tok.encode_words([f"{RARE}방", f"방{RARE}", f"국{RARE}"]):
        assert tok.unk_id not in ids


def test_requested_size_is_kept_and_every_character_has_both_forms(tmp_path):
    vocab = _raw(_train(tmp_path, vocab_size=1000)).get_vocab()
    assert len(vocab) == 1000
    chars = {t.removeprefix("##") for t in vocab if len(t.removeprefix("##")) == 1}
    assert all(c in vocab and "##" + c in vocab for c in chars)


def test_the_same_corpus_always_gives_the_same_tokenizer(tmp_path):
    """tokenizers' trainer numbers pieces in hash-map order; hanlm fixes the order (#1794)."""
    runs = [tmp_path / str(run) for run in range(4)]
    for run in runs:
        run.mkdir()
    files = [(_train(run, vocab_size=1000) / "tokenizer.json").read_bytes() for run in runs]
    assert all(f == files[0] for f in files[1:])


def test_alphabet_limit_keeps_the_most_frequent_characters_ties_by_code_point(tmp_path):
    corpus = tmp_path / "ties.txt"
    # 가 x3, then 다/나/라 x2 (tied), then 마 x1: a limit of 3 keeps 가 and the first two of the tie.
    corpus.write_text("가가가 나나 다다 라라 마\n", encoding="utf-8")
    out = train_tokenizer(
        TokenizerTrainConfig(
            corpus=[str(corpus)], out=str(tmp_path / "tok"), vocab_size=20, limit_alphabet=3
        )
    )
    vocab = _raw(out).get_vocab()
    singles = sorted(t for t in vocab if len(t.removeprefix("##")) == 1)
    assert singles == ["##가", "##나", "##다", "가", "나", "다"]
    assert json.loads((out / "hanlm_tokenizer.json").read_text())["training"]["alphabet"] == 3


def test_nfd_input_gives_the_nfc_ids(tok, tok_dir):
    nfd = unicodedata.normalize("NFD", SENTENCE)
    raw = _raw(tok_dir)
    assert raw.encode(nfd).ids == raw.encode(SENTENCE).ids
    (a, fa), (b, fb) = tok.encode_words([SENTENCE, nfd])
    assert a.tolist() == b.tolist() and fa.tolist() == fb.tolist()


def test_latin_is_not_lowercased(tok_dir):
    assert "K" in _raw(tok_dir).encode("KBS").tokens[1]


# ---------------------------------------------------------------- directory and transformers

HF_SCRIPT = """
import json, sys, unicodedata
from transformers import AutoTokenizer, BertTokenizerFast
directory, text = sys.argv[1], sys.argv[2]
auto = AutoTokenizer.from_pretrained(directory)
bert = BertTokenizerFast.from_pretrained(directory)
pair = auto(text, "민주")
print(json.dumps({
    "hanlm_imported": "hanlm" in sys.modules,
    "auto": auto(text)["input_ids"],
    "auto_nfd": auto(unicodedata.normalize("NFD", text))["input_ids"],
    "pair": pair["input_ids"],
    "pair_types": pair["token_type_ids"],
    "bert": bert(text)["input_ids"],
    "special": [auto.pad_token_id, auto.unk_token_id, auto.cls_token_id, auto.sep_token_id, auto.mask_token_id],
    "decoded": auto.decode(auto(text)["input_ids"], skip_special_tokens=True),
}))
"""


def test_stock_transformers_loads_it_with_identical_ids(tok_dir, tok):
    text = f"{SENTENCE} KBS 漢字 {RARE}방"
    proc = subprocess.run(
        [sys.executable, "-c", HF_SCRIPT, str(tok_dir), text],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    raw = _raw(tok_dir)
    assert not got["hanlm_imported"]
    assert got["auto"] == raw.encode(text).ids
    assert got["auto_nfd"] == got["auto"]  # NFC kept by AutoTokenizer
    assert got["bert"] == got["auto"]  # BertTokenizerFast: same ids on NFC text, no lowercasing
    pair = raw.encode(text, "민주")
    assert got["pair"] == pair.ids and got["pair_types"] == pair.type_ids
    assert got["special"] == [0, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id]
    assert got["decoded"] == raw.decode(raw.encode(text).ids)


def test_directory_contents(tok_dir, tok):
    meta = json.loads((tok_dir / "hanlm_tokenizer.json").read_text(encoding="utf-8"))
    vocab_lines = (tok_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab_lines) == tok.vocab_size == meta["vocab_size"]
    assert vocab_lines[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert _raw(tok_dir).token_to_id(vocab_lines[-1]) == len(vocab_lines) - 1
    assert meta["fingerprint"] == tok.fingerprint and len(tok.fingerprint) == 16
    assert meta["pretokenize"] == tok.pretokenize == "none"
    assert meta["corpus"][0]["bytes"] > 0
    assert (tok.pad_id, tok.special_ids) == (0, {0, 1, 2, 3, 4})
    config = json.loads((tok_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["do_lower_case"] is False and config["strip_accents"] is False
    assert (tok_dir / "special_tokens_map.json").is_file()


# ---------------------------------------------------------------- encode_words


def test_encode_words_marks_the_first_piece_of_each_eojeol(tok, tok_dir):
    [(ids, starts)] = tok.encode_words([SENTENCE])
    assert ids.dtype == np.int32 and starts.dtype == bool
    assert ids.tolist() == _raw(tok_dir).encode(SENTENCE, add_special_tokens=False).ids
    first_len = len(tok.encode_words(["대한민국은"])[0][0])
    expected = np.zeros(len(ids), dtype=bool)
    expected[[0, first_len]] = True
    assert starts.tolist() == expected.tolist()  # "." stays inside 공화국이다.


def test_encode_words_batch_with_empty_text_and_extra_spaces(tok):
    (e_ids, e_starts), (ids, starts) = tok.encode_words(["", "  가  나\t다 "])
    assert len(e_ids) == len(e_starts) == 0
    assert starts.sum() == 3 and starts[0]


# Text that tests the unsplit-text path of encode_words against the eojeol-by-eojeol definition:
# punctuation, Latin and digits, CJK ideographs (BERT splits each), runs of spaces, tabs and
# newlines, U+3000 and other Unicode spaces, whitespace that BertNormalizer drops as a control
# character (\x0b \x0c \x1c-\x1f \x85), emoji with modifiers and ZWJ, zero-width characters,
# NFD jamo and combining accents, U+FFFD / NUL, special tokens, and words too long for WordPiece.
VARIED = [
    "",
    "   ",
    SENTENCE,
    "대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다!?",
    "  가  나\t다 \n라\r\n",
    "KBS 기자(記者)가 中國語와 漢字 100%를 'quote' 했다...",
    "가\u3000나\u00a0다\u2028라\u202f마\u205f바\u1680사\u2000아\u200a자",
    "가\x0b나\x0c다\x1c라\x1d마\x1e바\x1f사\x85아 차",
    "\x1c앞 뒤\x1f",
    "😀가나 다라 👍🏽 👨\u200d👩\u200d👧 끝😀",
    "가\u200b나 \u200b 다\u200c라\u2060마 \ufeff바",
    unicodedata.normalize("NFD", "한국어 문장이다") + " e\u0301 \u0301x",
    "\ufffd 가\x00나 [MASK] [CLS]가 나[SEP]",
    "가" * 120 + " 나 " + "a" * 150 + "다",
    "ﾊﾝｶｸ ＦＵＬＬ　ｗｉｄｔｈ 𠀀𪚥 한",
]


def _eojeol_by_eojeol(raw: Tokenizer, text: str) -> tuple[list[int], list[bool]]:
    """The definition: each whitespace-delimited word encoded alone; its first token starts it."""
    ids: list[int] = []
    starts: list[bool] = []
    for eojeol in text.split():
        piece = raw.encode(eojeol, add_special_tokens=False).ids
        ids += piece
        starts += [True] + [False] * (len(piece) - 1) if piece else []
    return ids, starts


def _random_texts(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    alphabet = list("가나다라한국어 .,!?abcXYZ09中日\t\n\u3000\u200b\u00a0😀\u0301\x1c\x85-'\"[]=\u0338\u00ad")
    return ["".join(rng.choice(alphabet, size=rng.integers(0, 30))) for _ in range(n)]


def test_encode_words_whole_texts_match_the_eojeol_definition(tok):
    assert tok._classes is not None  # hanlm's tokenizers take the whole-text path
    texts = VARIED + _random_texts(400)
    for text, (ids, starts) in zip(texts, tok.encode_words(texts), strict=True):
        assert ids.dtype == np.int32 and starts.dtype == bool
        assert (ids.tolist(), starts.tolist()) == _eojeol_by_eojeol(tok._tokenizer, text), repr(text)
    assert tok.encode_words([]) == []


def test_char_classes_are_what_the_tokenizer_does_with_each_character(tok):
    from hanlm.tokenizer import char_classes as cc

    text = "가 .中\x1cé\u00ad\u3000"
    classes = cc.CharClasses(tok._tokenizer).of(np.array([ord(c) for c in text], np.uint32))
    assert classes.tolist() == [cc.JOINS, cc.SEPARATES, cc.ALONE, cc.ALONE, cc.VANISHES, cc.JOINS,
                                cc.VANISHES, cc.SEPARATES]
    # words of "가 .中x": 가 / . / 中 / x
    starts = cc.word_starts(np.array([cc.JOINS, cc.SEPARATES, cc.ALONE, cc.ALONE, cc.JOINS]))
    assert starts.tolist() == [True, False, True, True, True]


def test_encode_words_pre_splits_only_the_texts_it_cannot_count_exactly(tok, monkeypatch):
    redone: list[str] = []
    split = tok._encode_split
    monkeypatch.setattr(tok, "_encode_split", lambda texts: redone.extend(texts) or split(texts))
    plain = [SENTENCE, "KBS 기자(記者)가 中國語를... 'quote' 😀 👍🏽", "", "  가  나\t다 \n라\u3000마"]
    odd = ["[MASK] 가", "가\x1c나", "가\u00ad 나", "가 \u00ad나"]
    tok.encode_words(plain + odd)
    assert redone == odd


def test_encode_words_keeps_pre_splitting_for_other_pre_tokenizers(tok_dir):
    from tokenizers import pre_tokenizers

    raw = _raw(tok_dir)
    raw.pre_tokenizer = pre_tokenizers.Metaspace()  # "▁" words: not what the eojeols would give
    foreign = KoreanTokenizer(tok_dir, raw, "none")
    assert foreign._classes is None
    for text, (ids, starts) in zip(VARIED, foreign.encode_words(VARIED), strict=True):
        assert (ids.tolist(), starts.tolist()) == _eojeol_by_eojeol(foreign._tokenizer, text)


# ---------------------------------------------------------------- kiwi


def test_kiwi_split_keeps_surface_text():
    assert kiwi_split("했다고 하더라") == "했 다고 하 더라"
    texts = ["대한민국은 민주공화국이다.", "봤었는데 재밌었어요ㅋㅋ 😀 𠀀한자"]
    for text, eojeols in zip(texts, kiwi_pieces(texts), strict=True):
        assert ["".join(pieces) for pieces in eojeols] == text.split()
        assert all(p and p in text for pieces in eojeols for p in pieces)
    assert kiwi_split([]) == []


def test_kiwi_tokenizer_flags_follow_eojeols(kiwi_tok):
    assert kiwi_tok.pretokenize == "kiwi"
    text = "대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다."
    [(ids, starts)] = kiwi_tok.encode_words([text])
    raw = kiwi_tok._tokenizer
    expected: list[bool] = []
    for pieces in kiwi_pieces([text])[0]:
        n = len(raw.encode(pieces, is_pretokenized=True, add_special_tokens=False).ids)
        expected += [True] + [False] * (n - 1)
    assert starts.tolist() == expected
    assert starts.sum() == len(text.split())
    assert ids.tolist() == raw.encode(kiwi_split(text), add_special_tokens=False).ids
    assert kiwi_tok.hf()(kiwi_split(text), add_special_tokens=False)["input_ids"] == ids.tolist()


def test_kiwi_usage_is_recorded(kiwi_tok):
    meta = json.loads((kiwi_tok.directory / "hanlm_tokenizer.json").read_text(encoding="utf-8"))
    config = json.loads((kiwi_tok.directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert "kiwi_split" in meta["usage"] and config["hanlm_pretokenize"] == "kiwi"
    assert "kiwipiepy" in config["hanlm_usage"]


# ---------------------------------------------------------------- bad directories and options


def test_load_refuses_what_is_not_a_bert_tokenizer(tmp_path, tok_dir):
    with pytest.raises(HanlmError, match="not found"):
        KoreanTokenizer.load(tmp_path / "nope")
    with pytest.raises(HanlmError, match="no tokenizer.json"):
        KoreanTokenizer.load(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(HanlmError, match="unreadable"):
        KoreanTokenizer.load(tmp_path)
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "가", "##나"])}
    new_tokenizer(vocab).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(HanlmError, match=r"lacks \[MASK\]"):
        KoreanTokenizer.load(tmp_path)


def test_out_directory_is_not_silently_overwritten(tmp_path):
    out = _train(tmp_path, max_texts=50)
    assert (
        json.loads((out / "hanlm_tokenizer.json").read_text(encoding="utf-8"))["training"]["texts"]
        == 50
    )
    with pytest.raises(HanlmError, match="--overwrite"):
        _train(tmp_path)
    _train(tmp_path, overwrite=True)


def test_bad_corpus_raises_hanlm_error(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\treview\n1\t가\n", encoding="utf-8")
    cfg = TokenizerTrainConfig(
        corpus=[str(bad)], out=str(tmp_path / "o"), reader=CorpusConfig(text_column="text")
    )
    with pytest.raises(HanlmError, match="no column 'text' .columns: id, review"):
        train_tokenizer(cfg)


# ---------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hanlm", "tokenizer", "train", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_cli_trains_end_to_end(tmp_path):
    out = tmp_path / "cli_tok"
    proc = _cli(_corpus(tmp_path), "--vocab-size", "500", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert KoreanTokenizer.load(out).vocab_size >= 500


def test_cli_on_error_skip_lists_bad_records_and_removes_a_stale_report(tmp_path):
    corpus = tmp_path / "c.tsv"
    rows = [f"{i}\t{line}" for i, line in enumerate(Path(_corpus(tmp_path)).read_text(
        encoding="utf-8").splitlines()) if line.strip()]
    rows[5] = "no tabs here"
    corpus.write_text("id\ttext\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "tok"
    proc = _cli(str(corpus), "--vocab-size", "300", "--out", str(out))
    assert proc.returncode == 2 and f"{corpus}:7: 1 fields" in proc.stderr
    proc = _cli(str(corpus), "--vocab-size", "300", "--out", str(out), "--on-error", "skip",
                "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert f"skipped 1 bad records (--on-error skip); listed in {out / 'skipped.jsonl'}" in (
        proc.stderr
    )
    [row] = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert (row["file"], row["line"]) == (str(corpus), 7)
    meta = json.loads((out / "hanlm_tokenizer.json").read_text(encoding="utf-8"))
    assert meta["training"]["skipped"] == 1 and meta["training"]["reader"]["on_error"] == "skip"
    rows[5] = "5\tfixed"
    corpus.write_text("id\ttext\n" + "\n".join(rows) + "\n", encoding="utf-8")
    proc = _cli(str(corpus), "--vocab-size", "300", "--out", str(out), "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert not (out / "skipped.jsonl").exists()


def test_cli_missing_file_is_one_line_exit_2(tmp_path):
    proc = _cli(str(tmp_path / "missing.txt"), "--vocab-size", "500", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "missing.txt" in errors[0] and "file not found" in errors[0]


# ---------------------------------------------------------------- real data


@pytest.mark.shared_data
def test_train_on_nsmc_raw_slice_without_test_reviews(shared_data, tmp_path):
    cfg = TokenizerTrainConfig(
        corpus=[str(shared_data / "nsmc-raw" / "reviews.tsv.gz")],
        out=str(tmp_path / "nsmc_tok"),
        vocab_size=8000,
        max_texts=100_000,
        reader=CorpusConfig(
            text_column="review",
            id_column="review_id",
            exclude_ids=[str(shared_data / "nsmc" / "ratings_test.txt")],
        ),
    )
    tok = KoreanTokenizer.load(train_tokenizer(cfg))
    meta = json.loads((tok.directory / "hanlm_tokenizer.json").read_text(encoding="utf-8"))
    assert meta["training"]["texts"] == 100_000 and tok.vocab_size >= 8000
    review = "이 영화 정말 재밌었어요 ㅋㅋ 배우들 연기도 최고"
    [(ids, starts)] = tok.encode_words([review])
    assert tok.unk_id not in ids and starts.sum() == len(review.split())
    assert tok.hf().decode(ids.tolist()) == review
