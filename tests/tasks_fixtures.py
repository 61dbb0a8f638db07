"""Tiny fixtures for the task tests: a random tiny BERT with a Korean WordPiece tokenizer, and
small learnable files in every official format, written by the tests themselves.

Every writer returns ``{"train": path, "dev": path, **extra finetune options}``; `FIXTURES`
maps each registered task name to its writer (the contract test checks that none is missing).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import trainers as tok_trainers
from transformers import BertConfig, BertForPreTraining, BertTokenizerFast

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# ------------------------------------------------------------------------------ data

SUBJECTS = ["영화가", "배우가", "음악이", "이야기가", "연출이"]
POSITIVE = ["정말 좋다", "최고다", "재미있다", "감동적이다"]
NEGATIVE = ["정말 싫다", "별로다", "지루하다", "최악이다"]


def sentiment_rows() -> list[tuple[str, str]]:
    """(text, label) pairs: label 1 exactly when a positive phrase occurs."""
    rows = []
    for s in SUBJECTS:
        for p, n in zip(POSITIVE, NEGATIVE, strict=True):
            rows += [(f"{s} {p}", "1"), (f"{s} {n}", "0")]
    return rows


YNAT = {
    "IT과학": ["반도체 신기술 공개", "인공지능 연구 발표"],
    "경제": ["주가 상승 마감", "환율 하락 전망"],
    "사회": ["경찰 수사 착수", "법원 판결 선고"],
    "생활문화": ["전시회 개막 소식", "공연 관객 몰려"],
    "세계": ["미국 대통령 방문", "중국 정부 발표"],
    "스포츠": ["축구 대표팀 승리", "야구 리그 개막"],
    "정치": ["국회 법안 통과", "여당 대표 선출"],
}

NLI = [
    ("영화가 정말 좋다", "영화가 좋다", "entailment"),
    ("영화가 정말 좋다", "영화가 싫다", "contradiction"),
    ("영화가 정말 좋다", "배우가 유명하다", "neutral"),
    ("음악이 최고다", "음악이 좋다", "entailment"),
    ("음악이 최고다", "음악이 최악이다", "contradiction"),
    ("음악이 최고다", "이야기가 길다", "neutral"),
    ("서울에서 축구를 했다", "축구를 했다", "entailment"),
    ("서울에서 축구를 했다", "축구를 하지 않았다", "contradiction"),
]

STS = [
    ("영화가 정말 좋다", "영화가 좋다", 4.6),
    ("영화가 정말 좋다", "음악이 최악이다", 0.4),
    ("음악이 최고다", "음악이 정말 좋다", 4.0),
    ("서울에서 축구를 했다", "부산에서 야구를 했다", 1.8),
    ("배우가 유명하다", "배우가 잘 알려져 있다", 4.2),
    ("이야기가 길다", "축구 대표팀 승리", 0.0),
    ("연출이 지루하다", "연출이 별로다", 3.4),
    ("주가 상승 마감", "주가 하락 마감", 2.2),
]

# (text, [(start, end_exclusive, type)]) — one entity spans a space ("3월 1일").
NER = [
    ("박지성은 서울에서 축구를 했다.", [(0, 3, "PS"), (5, 7, "LC")]),
    ("김연아는 3월 1일 부산에 갔다.", [(0, 3, "PS"), (5, 10, "DT"), (11, 13, "LC")]),
    ("이순신은 대전에서 태어났다.", [(0, 3, "PS"), (5, 7, "LC")]),
    ("삼성전자는 2019년 반도체를 팔았다.", [(0, 4, "OG"), (6, 11, "DT")]),
    ("박지성은 부산에서 12명을 만났다.", [(0, 3, "PS"), (5, 7, "LC"), (10, 13, "QT")]),
    ("김연아는 오후 3시에 서울에 왔다.", [(0, 3, "PS"), (5, 10, "TI"), (12, 14, "LC")]),
]


def _joined(sentences) -> tuple[str, list[tuple[int, int, str]]]:
    text, spans = "", []
    for sentence, entities in sentences:
        base = len(text) + (1 if text else 0)
        text = f"{text} {sentence}" if text else sentence
        spans += [(base + s, base + e, t) for s, e, t in entities]
    return text, spans


# All of NER as one sentence: 78 tokens, several windows at --max-len 16 or 64.
LONG_NER = _joined(NER)

# (sentence, subject (word, type), object (word, type), relation)
RE = [
    ("박지성은 서울에서 태어났다.", ("박지성", "PER"), ("서울", "LOC"), "per:place_of_birth"),
    ("이순신은 대전에서 태어났다.", ("이순신", "PER"), ("대전", "LOC"), "per:place_of_birth"),
    ("삼성전자는 이병철이 세웠다.", ("삼성전자", "ORG"), ("이병철", "PER"), "org:founded_by"),
    ("현대자동차는 정주영이 세웠다.", ("현대자동차", "ORG"), ("정주영", "PER"), "org:founded_by"),
    ("김연아는 부산에 갔다.", ("김연아", "PER"), ("부산", "LOC"), "no_relation"),
    ("박지성은 2019년 서울에 왔다.", ("박지성", "PER"), ("2019년", "DAT"), "no_relation"),
]

CONTEXTS = [
    ("서울", "서울은 대한민국의 수도이다. 서울에는 약 천만 명이 산다. 한강이 서울을 가로지른다.",
     [("대한민국의 수도는?", "서울"), ("서울을 가로지르는 강은?", "한강")]),
    ("박지성", "박지성은 축구 선수이다. 박지성은 1981년에 태어났다. 그는 영국에서 뛰었다.",
     [("박지성은 언제 태어났나?", "1981년"), ("박지성이 뛴 나라는?", "영국")]),
    ("이순신", "이순신은 조선의 장군이다. 이순신은 거북선을 만들었다. 그는 1545년에 태어났다.",
     [("이순신이 만든 배는?", "거북선"), ("이순신은 어느 나라 장군인가?", "조선")]),
    ("부산", "부산은 항구 도시이다. 부산에는 해운대 해수욕장이 있다. 부산은 영화제로 유명하다.",
     [("부산의 해수욕장은?", "해운대"), ("부산은 무엇으로 유명한가?", "영화제")]),
]
# Long enough for several windows at --max-len 64.
LONG_CONTEXT = " ".join(["영화가 정말 좋다."] * 12 + ["김연아는 3월 1일 부산에 갔다."] +
                        ["음악이 최고다."] * 10)


def corpus() -> list[str]:
    """Every text of the fixtures, for the tokenizer's vocabulary."""
    texts = [t for t, _ in sentiment_rows()] + [t for v in YNAT.values() for t in v]
    texts += [x for p, h, _ in NLI for x in (p, h)] + [x for a, b, _ in STS for x in (a, b)]
    texts += [t for t, _ in NER] + [t for t, *_ in RE] + [LONG_CONTEXT]
    texts += [c for _, c, _ in CONTEXTS] + [q for *_, qas in CONTEXTS for q, _ in qas]
    return texts + ["언제 어디 누구 무엇 왜 어떻게 답이 없다 달에 간 사람은?"]


# ------------------------------------------------------------------------------ model


def build_tiny_model(directory: Path, seed: int = 0) -> Path:
    """A random BertForPreTraining (hidden 32, 1 layer) + NFC WordPiece tokenizer, HF format.

    The vocabulary is small enough that many words stay split (some syllables are pieces of
    their own, some words are one token), so offset mapping is exercised both ways.
    """
    return build_model(directory, corpus(), vocab_size=330, hidden=32, layers=1, heads=2,
                       max_positions=128, seed=seed)


def build_model(directory: Path, texts, *, vocab_size: int, hidden: int, layers: int,
                heads: int, max_positions: int = 512, seed: int = 0) -> Path:
    """A randomly initialised BertForPreTraining and a Korean-safe WordPiece tokenizer (NFC,
    lowercase=False, strip_accents=False: DESIGN.md "Korean traps") trained on `texts`.

    The weights come from `seed`, not from whatever the global RNG holds when a session fixture
    first asks, so a test's result does not depend on which tests ran before it."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFC(),
        normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                   strip_accents=False, lowercase=False),
    ])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = tok_trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                            limit_alphabet=3000)
    tok.train_from_iterator(texts, trainer=trainer)
    # The trainer numbers pieces of equal frequency in a different order on every run; the ids
    # are renumbered (special tokens first, where the trainer put them, then by text) so that
    # tests that train on this model see the same ids every time.
    vocab = tok.get_vocab(with_added_tokens=False)
    ordered = sorted(SPECIALS, key=vocab.__getitem__) + sorted(t for t in vocab if t not in SPECIALS)
    tok.model = models.WordPiece({t: i for i, t in enumerate(ordered)}, unk_token="[UNK]")
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                             cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                             do_lower_case=False, strip_accents=False)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden,
                        num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=4 * hidden, max_position_embeddings=max_positions,
                        pad_token_id=0)
    directory.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = BertForPreTraining(config)
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


# ------------------------------------------------------------------------------ writers


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def _csv(rows: list[list], delimiter: str = ",") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n",
                        quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE)
    writer.writerows(rows)
    return buf.getvalue()


def _json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2)


def write_nsmc(d: Path) -> dict:
    rows = sentiment_rows()
    table = lambda part: _csv([["id", "document", "label"]] +  # noqa: E731
                              [[1000 + i, t, lab] for i, (t, lab) in enumerate(part)], "\t")
    return {"train": _write(d / "ratings_train.txt", table(rows)),
            "dev": _write(d / "ratings_test.txt", table(rows[::3]))}


def write_ynat_csv(d: Path) -> dict:
    rows = [["guid", "title", "label", "label_name"]]
    names = list(YNAT)
    for k, (name, titles) in enumerate(YNAT.items()):
        rows += [[f"ynat-v1_dev_{k}{j}", t, names.index(name), name] for j, t in enumerate(titles)]
    path = _write(d / "ynat_dev.csv", _csv(rows))
    return {"train": path, "dev": path}


def write_ynat_json(d: Path) -> dict:
    records = [{"guid": f"ynat-v1_train_{k}{j}", "title": t, "label": name,
                "url": "https://example.com", "date": "2016.06.30. 오전 10:36"}
               for k, (name, titles) in enumerate(YNAT.items()) for j, t in enumerate(titles)]
    path = _write(d / "ynat-v1.1_train.json", _json(records))
    return {"train": path, "dev": path}


def write_klue_nli(d: Path) -> dict:
    records = [{"guid": f"klue-nli-v1_dev_{i:05d}", "source": "fixture", "premise": p,
                "hypothesis": h, "gold_label": g, "author": g}
               for i, (p, h, g) in enumerate(NLI)]
    path = _write(d / "klue-nli-v1.1_dev.json", _json(records))
    return {"train": path, "split_dev": "1:0.34"}


def write_kornli(d: Path) -> dict:
    table = _csv([["sentence1", "sentence2", "gold_label"]] + [list(r) for r in NLI], "\t")
    return {"train": _write(d / "snli_1.0_train.ko.tsv", table),
            "dev": _write(d / "xnli.dev.ko.tsv", table)}


def write_klue_sts(d: Path) -> dict:
    records = [{"guid": f"klue-sts-v1_dev_{i:05d}", "source": "fixture", "sentence1": a,
                "sentence2": b, "labels": {"label": s, "real-label": s,
                                           "binary-label": int(s >= 3)}}
               for i, (a, b, s) in enumerate(STS)]
    path = _write(d / "klue-sts-v1.1_dev.json", _json(records))
    return {"train": path, "dev": path}


def write_korsts(d: Path) -> dict:
    rows = [["genre", "filename", "year", "id", "score", "sentence1", "sentence2"]]
    rows += [["main-news", "fixture", "2017", f"{i:04d}", s, a, b]
             for i, (a, b, s) in enumerate(STS)]
    path = _write(d / "sts-dev.tsv", _csv(rows, "\t"))
    return {"train": path, "dev": path}


def ner_tsv(sentences=NER) -> str:
    lines = ["## 토큰, 레이블 구분자 : \\t", "## 컬럼명 : CHAR\tNE_TAG"]
    for i, (text, spans) in enumerate(sentences):
        tags = ["O"] * len(text)
        for start, end, kind in spans:
            tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        lines.append(f"## klue-ner-v1_dev_{i:05d}-fixture\t{text}")
        lines += [f"{ch}\t{tag}" for ch, tag in zip(text, tags, strict=True)]
        lines.append("")
    return "\n".join(lines) + "\n"


def write_klue_ner(d: Path) -> dict:
    path = _write(d / "klue-ner-v1.1_dev.tsv", ner_tsv([*NER, LONG_NER]))
    return {"train": path, "dev": path}


def re_records() -> list[dict]:
    out = []
    for i, (text, (sw, st), (ow, ot), label) in enumerate(RE):
        s, o = text.index(sw), text.index(ow)
        out.append({"guid": f"klue-re-v1_dev_{i:05d}", "sentence": text,
                    "subject_entity": {"word": sw, "start_idx": s, "end_idx": s + len(sw) - 1,
                                       "type": st},
                    "object_entity": {"word": ow, "start_idx": o, "end_idx": o + len(ow) - 1,
                                      "type": ot},
                    "label": label, "source": "fixture"})
    return out


def re_csv(records: list[dict]) -> str:
    rows = [["id", "sentence", "subject_entity", "object_entity", "label", "source"]]
    rows += [[i, r["sentence"], str(r["subject_entity"]), str(r["object_entity"]), r["label"],
              r["source"]] for i, r in enumerate(records)]
    return _csv(rows)


def write_klue_re(d: Path) -> dict:
    records = re_records()
    return {"train": _write(d / "train.csv", re_csv(records)),
            "dev": _write(d / "klue-re-v1.1_dev.json", _json(records))}


def squad(impossible: bool = False, long: bool = True) -> dict:
    data = []
    for title, context, qas in CONTEXTS:
        items = [{"id": f"{title}-{k}", "question": q,
                  "answers": [{"text": a, "answer_start": context.index(a)}]}
                 for k, (q, a) in enumerate(qas)]
        if impossible:
            for item in items:
                item["is_impossible"] = False
                item["guid"] = item.pop("id")
            items.append({"guid": f"{title}-none", "question": "달에 간 사람은?",
                          "answers": [], "is_impossible": True})
        data.append({"title": title, "paragraphs": [{"context": context, "qas": items}]})
    if long:
        answer = "3월 1일"
        data.append({"title": "긴 문서", "paragraphs": [{"context": LONG_CONTEXT, "qas": [{
            ("guid" if impossible else "id"): "long-0", "question": "김연아는 언제 부산에 갔나?",
            "answers": [{"text": answer, "answer_start": LONG_CONTEXT.index(answer)}],
            **({"is_impossible": False} if impossible else {})}]}]})
    return {"version": "fixture", "data": data}


def write_korquad(d: Path) -> dict:
    path = _write(d / "KorQuAD_v1.0_dev.json", _json(squad()))
    return {"train": path, "split_dev": "7:0.4", "stride": 16}


def write_klue_mrc(d: Path) -> dict:
    path = _write(d / "klue-mrc-v1.1_dev.json", _json(squad(impossible=True)))
    return {"train": path, "dev": path, "stride": 16}


def write_csv(d: Path) -> dict:
    rows = [["sentence", "sentiment"]] + [[t, "pos" if lab == "1" else "neg"]
                                           for t, lab in sentiment_rows()]
    jsonl = "".join(json.dumps({"sentence": t, "sentiment": lab}, ensure_ascii=False) + "\n"
                    for t, lab in rows[1::2])
    return {"train": _write(d / "mine.csv", _csv(rows)), "dev": _write(d / "mine.jsonl", jsonl),
            "text_column": "sentence", "label_column": "sentiment"}


FIXTURES: dict[str, Callable[[Path], dict]] = {
    "nsmc": write_nsmc,
    "klue-ynat": write_ynat_csv,
    "klue-nli": write_klue_nli,
    "kornli": write_kornli,
    "klue-sts": write_klue_sts,
    "korsts": write_korsts,
    "csv": write_csv,
    "klue-ner": write_klue_ner,
    "klue-re": write_klue_re,
    "korquad": write_korquad,
    "klue-mrc": write_klue_mrc,
}


# ------------------------------------------------------------------ running a task in tests

QUICK = {"max_steps": 4, "eval_every": 2, "batch_size": 4, "max_len": 64, "progress": False,
         "lr": 1e-3, "log_every": 1}


def run_finetune(task: str, files: dict, model: Path, out: Path, **overrides) -> dict:
    """`hanlm finetune` in process with QUICK settings; its metrics.json."""
    from hanlm import config
    from hanlm.tasks.run import FinetuneConfig, finetune

    values = {"task": task, "model": str(model), "out": str(out), **QUICK,
              **{k: str(v) for k, v in files.items()}, **overrides}
    assert finetune(config.build(FinetuneConfig, values)) == 0
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
