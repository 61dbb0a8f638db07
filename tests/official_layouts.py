"""A few records in the exact layout of each published task file hanlm reads.

Each layout keeps the official file name, header and quirks (the rows are short, some are made
up): KorSTS ids that repeat across ``filename``/``year``, bare quotes inside TSV sentences,
SNLI's ``N/A`` sentence and ``-`` label, NSMC's review that opens with a quote, KLUE's indented
JSON lists, KorQuAD's one-line ``\\u``-escaped JSON. `variants` gives the line-break and
byte-order-mark variants a file passes through on its way to a user (Windows tools, editors).
"""

from __future__ import annotations

import json

KORSTS_HEADER = "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2\n"
KORSTS_TRAIN = KORSTS_HEADER + (
    "main-captions\tMSRvid\t2012test\t0001\t5.000\t비행기가 이륙하고 있다.\t비행기가 이륙하고 있다.\n"
    "main-captions\tMSRvid\t2012test\t0004\t3.800\t한 남자가 큰 플루트를 연주하고 있다.\t"
    "남자가 플루트를 연주하고 있다.\n"
    "main-captions\tMSRvid\t2012train\t0004\t0.500\t한 여자가 양파를 썰고 있다.\t"
    "한 남자가 춤을 추고 있다.\n"
    'main-news\theadlines\t2013\t0011\t2.400\t"사랑은 전쟁"이라고 그가 말했다.\t'
    '그는 "평화를 말했다.\n'
)
"""sts-train.tsv: id 0004 is MSRvid 2012test's and 2012train's; quotes are bare text."""

KORNLI_HEADER = "sentence1\tsentence2\tgold_label\n"
KORNLI_SNLI = KORNLI_HEADER + (
    '그리고 그가 말했다, "엄마, 저 왔어요."\t그는 학교 버스가 그를 내려주자마자 엄마에게 전화를 걸었다.'
    "\tneutral\n"
    '그리고 그가 말했다, "엄마, 저 왔어요."\t그는 한마디도 하지 않았다.\tcontradiction\n'
    "설명할 그림을 볼 수 없습니다.\tN/A\tneutral\n"
    "두 여자가 포옹하고 있다.\t두 사람이 서로 안고 있다.\t-\n"
    '"그 남자는 웃고 있다\t남자가 행복해 보인다.\tentailment\n'
)
"""snli_1.0_train.ko.tsv: SNLI's picture-less ``N/A`` hypothesis, a ``-`` (no agreement)
label at line 5, and a sentence opening with a quote it never closes at line 6."""
KORNLI_SNLI_NO_GOLD_LINE = 5

KORNLI_MNLI = KORNLI_HEADER + (
    "개념적으로 크림 스키밍은 제품과 지리라는 두 가지 기본 차원을 가지고 있다.\t"
    "제품과 지리학은 크림 스키밍을 작동시키는 것이다.\tneutral\n"
    '"당신은 그것을 할 수 있다\t당신은 그것을 할 수 없다.\tcontradiction\n'
    "그는 떠났다.\t그는 떠나지 않았다.\tcontradiction\n"
)
"""multinli.train.ko.tsv: an unclosed opening quote a quoting reader would run into the next
lines (a known trap of this file)."""

NSMC = (
    "id\tdocument\tlabel\n"
    "9976970\t아 더빙.. 진짜 짜증나네요 목소리\t0\n"
    '3819312\t"흠...포스터보고 초딩영화줄....오버연기조차 가볍지 않구나\t1\n'
    "10265843\t\t0\n"
    "9045019\t교도소 이야기구먼 ..솔직히 재미는 없다..평점 조정\t0\n"
)
"""ratings_train.txt: a review opening with a quote it never closes, and an empty review."""

KLUE_NLI = json.dumps([
    {"guid": "klue-nli-v1_dev_00000", "source": "airbnb",
     "premise": "흡연자분들은 발코니가 있는 방이면 발코니에서 흡연이 가능합니다.",
     "hypothesis": "어떤 방에서도 흡연은 금지됩니다.", "gold_label": "contradiction",
     "author": "contradiction", "label2": "contradiction", "label3": "contradiction",
     "label4": "contradiction", "label5": "contradiction"},
    {"guid": "klue-nli-v1_dev_00001", "source": "airbnb",
     "premise": "10명이 함께 사용하기 불편함없이 만족했다.",
     "hypothesis": "10명이 함께 사용하기 불편했다.", "gold_label": "contradiction",
     "author": "contradiction", "label2": "contradiction", "label3": "contradiction",
     "label4": "contradiction", "label5": "neutral"},
], ensure_ascii=False, indent=4)


def _sts_record(n: int, source: str, pair: tuple[str, str], real: float, votes: str) -> dict:
    """One KLUE-STS record: ``label`` is the annotators' mean rounded to one decimal."""
    label = round(real, 1)
    return {"guid": f"klue-sts-v1_dev_{n:05d}", "source": source,
            "sentence1": pair[0], "sentence2": pair[1],
            "labels": {"label": label, "real-label": real, "binary-label": int(label >= 3)},
            "annotations": {"agreement": votes, "annotators": ["17", "07"],
                            "annotations": [5, 4]}}


KLUE_STS = json.dumps([
    _sts_record(0, "airbnb-rtt", ("무엇보다도 호스트분들이 너무 친절하셨습니다.",
                                  "무엇보다도, 호스트들은 매우 친절했습니다."),
                4.857142857142857, "0:0:0:0:1:6"),
    _sts_record(1, "airbnb-sampled", ("주요 관광지 모두 걸어서 이동가능합니다.",
                                      "위치는 피렌체 중심가까지 걸어서 이동 가능합니다."),
                1.428571428571429, "0:4:3:0:0:0"),
], ensure_ascii=False, indent=4)


KLUE_NER = (
    "## 주의 : 태그 형식은 CHAR\tNE_TAG\n"
    "## klue-ner-v1_dev_00000-wikitree\t<이순신:PS>은 장군이다.\n"
    "이\tB-PS\n순\tI-PS\n신\tI-PS\n은\tO\n \tO\n장\tO\n군\tO\n이\tO\n다\tO\n.\tO\n"
    "\n"
    "## klue-ner-v1_dev_00001-wikitree\t<서울:LC>에 간다\n"
    "서\tB-LC\n울\tI-LC\n에\tO\n \tO\n간\tO\n다\tO\n"
    "\n"
)
"""klue-ner-v1.1_dev.tsv: ``##`` comment lines, the one before a sentence holding its guid."""

KORQUAD = json.dumps({"version": "KorQuAD_v1.0_dev", "data": [{"paragraphs": [{"qas": [
    {"answers": [{"text": "1989년 2월 15일", "answer_start": 0}], "id": "6548850-0-0",
     "question": "임종석이 여의도 농민 폭력 시위를 주도한 혐의로 지명수배 된 날은?"},
    {"answers": [{"text": "임수경", "answer_start": 25}], "id": "6548850-0-1",
     "question": "평양축전에 대표로 파견 된 인물은?"}],
    "context": "1989년 2월 15일 지명수배되었다. 이후 임수경을 평양축전에 파견하였다."}],
    "title": "임종석"}]})
"""KorQuAD_v1.0_dev.json: one line, non-ASCII as ``\\u`` escapes (``json.dumps`` defaults)."""

# task -> (file name, text): the files as published
PUBLISHED: dict[str, tuple[str, str]] = {
    "korsts": ("sts-train.tsv", KORSTS_TRAIN),
    "kornli-snli": ("snli_1.0_train.ko.tsv", KORNLI_SNLI),
    "kornli-mnli": ("multinli.train.ko.tsv", KORNLI_MNLI),
    "nsmc": ("ratings_train.txt", NSMC),
    "klue-nli": ("klue-nli-v1.1_dev.json", KLUE_NLI),
    "klue-sts": ("klue-sts-v1.1_dev.json", KLUE_STS),
    "klue-ner": ("klue-ner-v1.1_dev.tsv", KLUE_NER),
    "korquad": ("KorQuAD_v1.0_dev.json", KORQUAD),
}


def task_of(layout: str) -> str:
    return layout.split("-snli")[0].split("-mnli")[0]


def variants(text: str) -> dict[str, bytes]:
    """The file's bytes as published (LF), with CRLF line breaks, and CRLF behind a UTF-8 BOM."""
    crlf = text.replace("\n", "\r\n")
    return {"lf": text.encode(), "crlf": crlf.encode(), "bom-crlf": b"\xef\xbb\xbf" + crlf.encode()}
