"""hanlm.text: normalisation, every corpus format, grouping, id exclusion, bad input."""

from __future__ import annotations

import gzip
import itertools
import json
import unicodedata
from pathlib import Path

import pytest

from hanlm.errors import HanlmError
from hanlm.text import (
    CorpusConfig,
    CorpusStats,
    NormalizeStats,
    load_ids,
    normalize,
    read_documents,
    read_texts,
    split_sentences,
)

NFD = unicodedata.normalize("NFD", "한국어 문장")


def write(path: Path, text: str, encoding: str = "utf-8") -> str:
    data = text.encode(encoding)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return str(path)


def docs(paths: list[str] | str, **cfg) -> list:
    return list(read_documents([paths] if isinstance(paths, str) else paths, CorpusConfig(**cfg)))


def error_of(paths: list[str] | str, **cfg) -> str:
    with pytest.raises(HanlmError) as info:
        docs(paths, **cfg)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- normalize


def test_normalize_composes_nfd_to_nfc_and_counts_it():
    stats = NormalizeStats()
    assert NFD != "한국어 문장"
    assert normalize(NFD, stats) == "한국어 문장"
    assert normalize("이미 NFC", stats) == "이미 NFC"
    assert (stats.texts, stats.nfd_to_nfc) == (2, 1)
    assert "1 of 2" in stats.describe()


def test_normalize_removes_zero_width_and_control_characters():
    text = "\ufeff한\u200b국\u200c어\u200d \u2060문장\x00\x07\x7f"
    assert normalize(text) == "한국어 문장"


def test_normalize_collapses_whitespace_and_strips():
    assert normalize("  가\t\t나\r\n다\u3000라\xa0마  ") == "가 나 다 라 마"
    assert normalize(" \t\u200b ") == ""


def test_normalize_composes_jamo_split_by_a_zero_width_character():
    assert normalize("\u1112\u200b\u1161\u11ab") == "한"


def test_normalize_many_equals_normalize_one_at_a_time():
    import random

    from hanlm.text.normalize import normalize_many

    rng = random.Random(0)
    alphabet = ["가", "a", " ", "\t", "\n", "\u200b", "\x00", "\u3000", "\xa0", "\u1112", "\u1161",
                "\u11ab", "\ue000", "\x85", "\r", "\ufeff", "e\u0301", "\u0301"]
    for trial in range(2000):
        letters = alphabet if trial % 3 == 0 else alphabet[:12]  # with and without NFD / the joiner
        texts = ["".join(rng.choice(letters) for _ in range(rng.randint(0, 8)))
                 for _ in range(rng.randint(0, 6))]
        one, many = NormalizeStats(), NormalizeStats()
        assert normalize_many(texts, many) == [normalize(t, one) for t in texts], texts
        assert (many.texts, many.nfd_to_nfc) == (one.texts, one.nfd_to_nfc)


# ---------------------------------------------------------------- formats


def test_docs_format_blank_lines_separate_documents(tmp_path):
    path = write(tmp_path / "c.txt", "첫 문장.\n둘째 문장.\n\n\n다음 문서.\n")
    got = docs(path)
    assert [d.sentences for d in got] == [["첫 문장.", "둘째 문장."], ["다음 문서."]]
    assert got[1].source == f"{path}:5" and got[1].id == "c.txt:5"  # the id: file name, not path


def test_gzip_is_read_transparently(tmp_path):
    plain = write(tmp_path / "c.txt", "가 나.\n\n다 라.\n")
    packed = write(tmp_path / "c.txt.gz", "가 나.\n\n다 라.\n")
    assert [d.sentences for d in docs(packed)] == [d.sentences for d in docs(plain)]


def test_lines_format_one_document_a_line(tmp_path):
    path = write(tmp_path / "c.txt", "하나\n\n둘\n셋\n")
    assert [d.sentences for d in docs(path, format="lines")] == [["하나"], ["둘"], ["셋"]]


WIKI = (
    '<doc id="5" url="https://ko.wikipedia.org/wiki?curid=5" title="지미 카터">\n'
    "지미 카터\n\n"
    "제임스 얼 카터 주니어는 미국 39번째 대통령이다.\n\n"
    "조지아주에서 태어났다.\n"
    "</doc>\n"
    '<doc id="9" url="u" title="수학">\n'
    "수학\n\n"
    "수학은 학문이다.\n"
    "</doc>\n"
)


@pytest.mark.parametrize("name", ["wiki.txt", "wiki.txt.gz"])
def test_txt_with_doc_tags_is_read_as_wiki_title_dropped(tmp_path, name):
    got = docs(write(tmp_path / name, WIKI))
    assert [d.id for d in got] == ["5", "9"]
    assert got[0].sentences == [
        "제임스 얼 카터 주니어는 미국 39번째 대통령이다.",
        "조지아주에서 태어났다.",
    ]
    assert got[1].sentences == ["수학은 학문이다."]


def test_wiki_text_outside_doc_is_an_error(tmp_path):
    path = write(tmp_path / "w.txt", WIKI + "떠도는 줄\n")
    assert f"{path}:13:" in error_of(path, format="wiki")


def test_jsonl_with_ids(tmp_path):
    lines = [
        {"id": 1, "text": "첫째"},
        {"id": "b", "text": "둘째", "extra": [1]},
        {"id": 3, "text": None},
    ]
    path = write(
        tmp_path / "c.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n"
    )
    stats = CorpusStats()
    got = list(read_documents([path], CorpusConfig(id_column="id"), stats))
    assert [(d.id, d.sentences) for d in got] == [("1", ["첫째"]), ("b", ["둘째"])]
    assert stats.empty == 1


def test_json_extension_is_jsonl(tmp_path):
    path = write(tmp_path / "c.json.gz", '{"body": "본문"}\n')
    assert [d.sentences for d in docs(path, text_column="body")] == [["본문"]]


def test_tsv_does_not_treat_quotes_as_quoting(tmp_path):
    # NSMC reviews may start with '"': a quoting reader would swallow the following lines.
    path = write(tmp_path / "r.tsv", 'id\treview\n1\t"따옴표로 시작\n2\t다음 줄\n')
    assert [d.sentences for d in docs(path, text_column="review")] == [
        ['"따옴표로 시작'],
        ["다음 줄"],
    ]


def test_csv_handles_quoted_commas_and_newlines(tmp_path):
    path = write(tmp_path / "r.csv", 'id,text\n1,"쉼표, 있는 문장"\n2,"두 줄\n문장"\n')
    assert [d.sentences for d in docs(path)] == [["쉼표, 있는 문장"], ["두 줄 문장"]]


def test_nsmc_style_txt_with_text_column_is_read_as_tsv(tmp_path):
    path = write(tmp_path / "ratings.txt", "id\tdocument\tlabel\n9\t재밌다\t1\n")
    assert [(d.id, d.sentences) for d in docs(path, text_column="document", id_column="id")] == [
        ("9", ["재밌다"])
    ]


def test_utf8_bom_does_not_hide_the_first_column(tmp_path):
    path = write(tmp_path / "bom.csv", "\ufefftext,label\n좋다,1\n")
    assert [d.sentences for d in docs(path)] == [["좋다"]]


def test_nfd_input_comes_out_nfc_and_zero_width_removed(tmp_path):
    path = write(tmp_path / "c.txt", NFD + "\u200b입니다\n")
    stats = CorpusStats()
    assert list(read_texts([path], CorpusConfig(), stats)) == ["한국어 문장입니다"]
    assert stats.normalize.nfd_to_nfc == 1


def test_read_texts_yields_every_sentence_across_files(tmp_path):
    a = write(tmp_path / "a.txt", "하나\n둘\n\n셋\n")
    b = write(tmp_path / "b.jsonl", '{"text": "넷"}\n')
    assert list(read_texts([a, b], CorpusConfig())) == ["하나", "둘", "셋", "넷"]


# ---------------------------------------------------------------- grouping


def test_group_column_joins_records_into_documents(tmp_path):
    rows = "movie\treview\n1\t가\n2\t나\n1\t다\n"
    path = write(tmp_path / "g.tsv", rows)
    got = docs(path, text_column="review", group_column="movie")
    assert [(d.id, d.sentences) for d in got] == [("1", ["가", "다"]), ("2", ["나"])]


def test_group_window_bounds_the_grouping(tmp_path):
    rows = "movie\treview\n1\t가\n2\t나\n1\t다\n"
    path = write(tmp_path / "g.tsv", rows)
    got = docs(path, text_column="review", group_column="movie", group_window=2)
    assert [(d.id, d.sentences) for d in got] == [("1", ["가"]), ("2", ["나"]), ("1", ["다"])]


# ---------------------------------------------------------------- exclusion


def test_exclude_ids_from_a_tsv_with_an_id_column(tmp_path):
    corpus = write(tmp_path / "raw.tsv.gz", "review_id\treview\n10\t남김\n11\t뺌\n12\t남김 둘\n")
    ids = write(tmp_path / "test.txt", "id\tdocument\tlabel\n11\t뺌\t0\n99\t없음\t1\n")
    stats = CorpusStats()
    cfg = CorpusConfig(text_column="review", id_column="review_id", exclude_ids=[ids])
    got = list(read_documents([corpus], cfg, stats))
    assert [d.id for d in got] == ["10", "12"]
    assert stats.excluded_records == 1 and stats.excluded == 1


def test_exclude_ids_one_a_line_applies_to_document_ids(tmp_path):
    ids = write(tmp_path / "ids.txt", "9\n\n")
    wiki = write(tmp_path / "w.txt", WIKI)
    groups = write(tmp_path / "g.jsonl", '{"g": "9", "text": "a"}\n{"g": "8", "text": "b"}\n')
    stats = CorpusStats()
    assert [d.id for d in read_documents([wiki], CorpusConfig(exclude_ids=[ids]), stats)] == ["5"]
    assert [d.id for d in docs(groups, group_column="g", exclude_ids=[ids])] == ["8"]
    assert stats.excluded_documents == 1


def test_record_ids_do_not_exclude_groups_with_the_same_value(tmp_path):
    """nsmc-raw: movie ids and review ids share a number space; --id-column names records."""
    corpus = write(tmp_path / "r.tsv", "review_id\tmovie_id\treview\n7\t11\t남김\n11\t7\t뺌\n12\t7\t남김 둘\n")
    ids = write(tmp_path / "ids.txt", "11\n")
    got = docs(corpus, text_column="review", group_column="movie_id", id_column="review_id",
               exclude_ids=[ids])
    assert sorted((d.id, tuple(d.sentences)) for d in got) == [("11", ("남김",)), ("7", ("남김 둘",))]


def test_exclude_ids_without_an_id_column_is_refused(tmp_path):
    ids = write(tmp_path / "ids.txt", "1\n")
    corpus = write(tmp_path / "c.tsv", "id\ttext\n1\t가\n")
    assert "--id-column" in error_of(corpus, exclude_ids=[ids])
    assert "no ids" in error_of(corpus, exclude_ids=[write(tmp_path / "empty.txt", "\n")])


def test_load_ids_csv_header(tmp_path):
    assert load_ids([write(tmp_path / "ids.csv", "label,id\n0,a\n1,b\n")]) == {"a", "b"}


def test_everything_excluded_says_why(tmp_path):
    ids = write(tmp_path / "ids.txt", "1\n")
    corpus = write(tmp_path / "c.jsonl", '{"id": 1, "text": "가"}\n')
    message = error_of(corpus, id_column="id", exclude_ids=[ids])
    assert "no text found in" in message and "excluded" in message


# ---------------------------------------------------------------- sentences (kiwi)


def test_split_sentences_with_and_without_punctuation(tmp_path):
    path = write(
        tmp_path / "r.txt",
        "그래서 봤음 그리고 또 봤음 재밌었다 정말로\n최고의 영화...정말 최고다..\n",
    )
    got = docs(path, format="lines", split_sentences=True)
    assert got[0].sentences == ["그래서 봤음", "그리고 또 봤음", "재밌었다", "정말로"]
    assert got[1].sentences == ["최고의 영화...", "정말 최고다.."]
    assert split_sentences([]) == []


# ---------------------------------------------------------------- bad input


def test_cp949_file_suggests_encoding_and_reads_with_it(tmp_path):
    path = write(tmp_path / "k.txt", "첫 줄\n둘째 줄\n", encoding="cp949")
    message = error_of(path)
    assert f"{path}:1:" in message and "--encoding cp949" in message and "line 1" in message
    assert [d.sentences for d in docs(path, encoding="cp949")] == [["첫 줄", "둘째 줄"]]


def test_decode_error_names_the_right_line_far_into_a_file(tmp_path):
    path = tmp_path / "late.txt"
    path.write_bytes("가나다\n".encode() * 5000 + "한글\n".encode("cp949"))
    assert f"{path}:5001:" in error_of(str(path))


def _lines_one_at_a_time(path: Path, encoding: str) -> list:
    """The reference: every line of the binary file decoded on its own."""
    out = []
    for lineno, raw in enumerate(path.open("rb"), 1):
        try:
            line = raw.decode(encoding)
        except UnicodeDecodeError:
            out.append((lineno, "<bad>"))
            continue
        out.append((lineno, line.removeprefix("\ufeff") if lineno == 1 else line))
    return out


@pytest.mark.parametrize("block_bytes", [1, 7, 64, 1 << 20])
def test_lines_read_in_blocks_equal_lines_read_one_at_a_time(tmp_path, monkeypatch, block_bytes):
    from hanlm.text import lines

    monkeypatch.setattr(lines, "BLOCK_BYTES", block_bytes)
    rng = __import__("random").Random(block_bytes)
    pieces = ["가나", "a\tb", "\r", "\r\n", "\n", "\n\n", "\u2028", " ", "\x85", "다"]
    data = "\ufeff" + "".join(rng.choice(pieces) for _ in range(400))
    raw = data.encode() + "한글\n".encode("cp949") + "끝 줄".encode()
    path = tmp_path / "mixed.txt"
    path.write_bytes(raw)
    rejected = []
    read = list(lines.decoded_lines(str(path), "utf-8", reject=lambda e: rejected.append(e.line)))
    expected = _lines_one_at_a_time(path, "utf-8")
    assert read == [item for item in expected if item[1] != "<bad>"]
    assert rejected == [n for n, line in expected if line == "<bad>"] and len(rejected) == 1


@pytest.mark.parametrize("line", ["a\tb\n", "a\tb\r\n", "a\tb\r\r\n", "\n", "\r\n", " \n",
                                  "a\x00b\tc\n", "a\tb", '"a\tb"\n', 'a\t"b\n', "a\tb\x85c\n",
                                  "a\tb\u2028c\n", "a\tb\r", "a\rb\tc\n", "\ra\tb\n", "\t\n"])
def test_tsv_rows_split_as_the_csv_module_does(line):
    import csv

    from hanlm.text import tables

    [(_, _, row)] = list(tables.tsv_rows("f.tsv", [(1, line)]))
    try:
        expected = next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE), [])
    except csv.Error:
        assert isinstance(row, HanlmError) and "malformed tsv" in str(row)
    else:
        assert row == expected


def test_malformed_json_names_the_line(tmp_path):
    path = write(tmp_path / "c.jsonl", '{"text": "좋다"}\n{"text": "나쁘\n')
    message = error_of(path)
    assert f"{path}:2:" in message and "malformed JSON at line 2" in message


def test_json_line_that_is_not_an_object(tmp_path):
    assert "expected a JSON object" in error_of(write(tmp_path / "c.jsonl", '["가"]\n'))


def test_missing_column_lists_columns_and_suggests(tmp_path):
    path = write(tmp_path / "c.tsv", "id\tdocument\tlabel\n1\t가\t0\n")
    message = error_of(path, text_column="documnet")
    assert f"{path}:1:" in message
    assert "id, document, label" in message and "--text-column document" in message
    jsonl = write(tmp_path / "c.jsonl", '{"text": "가"}\n{"txt": "나"}\n')
    assert f"{jsonl}:2:" in error_of(jsonl)


def test_missing_text_column_suggests_the_column_that_holds_text(tmp_path):
    """NSMC raw's header: spelling alone would point --text-column at 'date'."""
    path = write(tmp_path / "r.tsv", "review_id\tmovie_id\trating\tdate\treview\n1\t2\t10\td\t가\n")
    assert "did you mean --text-column review?" in error_of(path)


def test_row_with_wrong_field_count(tmp_path):
    path = write(tmp_path / "c.tsv", "id\ttext\n1\t가\n2\t나\t다\n")
    assert f"{path}:3:" in error_of(path)


def test_missing_file_and_directory(tmp_path):
    assert "file not found" in error_of(str(tmp_path / "nope.txt"))
    assert "directory" in error_of(str(tmp_path))


@pytest.mark.parametrize("content", ["", "\n\n  \n\u200b\n"])
def test_empty_or_blank_file_is_no_text(tmp_path, content):
    path = write(tmp_path / "empty.txt", content)
    assert f"no text found in {path}" in error_of(path)


def test_no_files_at_all():
    with pytest.raises(HanlmError, match="no corpus files"):
        docs([])


def test_header_only_table_is_no_text(tmp_path):
    assert "no text found" in error_of(write(tmp_path / "h.tsv", "id\ttext\n"))


def test_unknown_extension_and_encoding(tmp_path):
    path = write(tmp_path / "c.dat", "가\n")
    assert "--format" in error_of(path)
    assert [d.sentences for d in docs(path, format="lines")] == [["가"]]
    assert "unknown encoding" in error_of(path, format="lines", encoding="klingon")


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "bad.txt.gz"
    path.write_bytes(b"not gzip at all")
    assert str(path) in error_of(str(path))


def test_a_missing_second_file_fails_before_reading_the_first(tmp_path):
    good = write(tmp_path / "a.txt", "가\n")
    stream = read_documents([good, str(tmp_path / "b.txt")], CorpusConfig())
    with pytest.raises(HanlmError, match="file not found"):
        next(stream)


# ---------------------------------------------------------------- --on-error skip


def skipping(paths: list[str] | str, **cfg) -> tuple[list, CorpusStats]:
    stats = CorpusStats()
    read = read_documents([paths] if isinstance(paths, str) else paths,
                          CorpusConfig(on_error="skip", **cfg), stats)
    return [d.sentences for d in read], stats


@pytest.mark.parametrize("name, content, bad_lines, reason, kept", [
    ("c.jsonl", '{"text": "가"}\n{"text": "나\n["다"]\n{"txt": "라"}\n{"text": {"a": 1}}\n'
     '{"text": "마"}\n', [2, 3, 4, 5], "malformed JSON at line 2", ["가", "마"]),
    ("c.tsv", "id\ttext\n1\t가\n2\t나\t다\n3\n4\t마\n", [3, 4], "3 fields but the header has 2",
     ["가", "마"]),
    ("c.csv", "id,text\n1,가\n2,나\r다\n3,x,y\n4,마\n", [3, 4], "malformed csv: new-line",
     ["가", "마"]),
    ("c.txt", '<doc id="1" title="t">\n가\n<doc id="2" title="u">\n나\n</doc>\n</doc>\n다\n'
     '<doc id="3" title="v">\n마\n</doc>\n', [3, 6, 7], "opened before the one at", ["나", "마"]),
])
def test_skip_lists_every_bad_record_and_keeps_the_rest(tmp_path, name, content, bad_lines, reason,
                                                        kept):
    path = write(tmp_path / name, content)
    error = error_of(path)  # the default is still an error
    assert f"{path}:{bad_lines[0]}:" in error and reason in error
    read, stats = skipping(path)
    assert read == [[text] for text in kept]
    assert [(s.path, s.line) for s in stats.skipped] == [(path, n) for n in bad_lines]
    assert reason in stats.skipped[0].reason and f"{path}:{bad_lines[0]}:" in stats.skipped[0].reason
    assert f"skipped {len(bad_lines)} bad records" in stats.describe()


def test_skip_leaves_out_undecodable_lines(tmp_path):
    path = tmp_path / "k.txt"
    path.write_bytes("가\n".encode() + "한글\n".encode("cp949") + "나\n\n다\n".encode())
    read, stats = skipping(str(path))
    assert read == [["가", "나"], ["다"]]
    assert [(s.line, "--encoding cp949" in s.reason) for s in stats.skipped] == [(2, True)]


def test_skip_keeps_table_line_numbers_right_after_an_undecodable_line(tmp_path):
    path = tmp_path / "k.tsv"
    path.write_bytes("id\ttext\n1\t가\n".encode() + "2\t한글\n".encode("cp949")
                     + "3\t나\n4\t다\t라\n".encode())
    stats = CorpusStats()
    read = list(read_documents([str(path)], CorpusConfig(on_error="skip", id_column="id"), stats))
    assert [(d.id, d.source) for d in read] == [("1", f"{path}:2"), ("3", f"{path}:4")]
    assert [s.line for s in stats.skipped] == [3, 5]


def test_skip_names_every_line_of_a_bad_multi_line_csv_record(tmp_path):
    path = write(tmp_path / "q.csv", 'id,text\n1,가\n2,"나\n다"\r라\n3,마\n')
    read, stats = skipping(path)
    assert read == [["가"], ["마"]]
    assert stats.skipped[0].line == 3 and "(lines 3-4)" in stats.skipped[0].reason


def test_skip_keeps_file_level_errors_and_says_what_was_skipped(tmp_path):
    table = write(tmp_path / "c.tsv", "id\treview\n1\t가\n")
    assert "no column 'text'" in error_of(table, on_error="skip")  # a header error stays one
    assert "cannot read" in error_of(_truncated_gzip(tmp_path), on_error="skip")
    every = write(tmp_path / "all.jsonl", '{"body": "가"}\n{"body": "나"}\n')
    message = error_of(every, on_error="skip")
    assert "no text found" in message and "2 bad records were skipped" in message
    assert "no column 'text'" in message


def _truncated_gzip(tmp_path: Path) -> str:
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(gzip.compress("".join(f"{i} 가나다\n" for i in range(5000)).encode())[:200])
    return str(path)


def test_long_table_fields_are_read_whole(tmp_path):
    text = "가" * 300_000
    path = write(tmp_path / "long.tsv", f"id\ttext\n1\t{text}\n")
    assert docs(path)[0].sentences == [text]


def test_write_skipped_report_and_its_removal(tmp_path):
    from hanlm.atomic import write_skipped
    from hanlm.text import SKIPPED_FILE

    path = write(tmp_path / "c.jsonl", '{"text": "가"}\n{"text": "나\n{"text": "다"}\n')
    _, stats = skipping(path)
    report = tmp_path / SKIPPED_FILE
    write_skipped(stats.skipped, report)
    rows = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert [(r["file"], r["line"]) for r in rows] == [(path, 2)]
    assert "malformed JSON" in rows[0]["reason"]
    write_skipped(CorpusStats().skipped, report)  # nothing skipped this time: no stale report
    assert not report.exists()


# ---------------------------------------------------------------- real data


@pytest.mark.shared_data
def test_nsmc_raw_exclusion_drops_every_test_review(shared_data):
    test_file = shared_data / "nsmc" / "ratings_test.txt"
    test_ids = load_ids([str(test_file)])
    assert len(test_ids) == 50_000
    cfg = CorpusConfig(text_column="review", id_column="review_id", exclude_ids=[str(test_file)])
    stats = CorpusStats()
    got = list(
        itertools.islice(
            read_documents([str(shared_data / "nsmc-raw" / "reviews.tsv.gz")], cfg, stats), 20_000
        )
    )
    assert not {d.id for d in got} & test_ids
    assert stats.excluded_records > 0
    assert all(unicodedata.is_normalized("NFC", s) for d in got for s in d.sentences)


def test_one_extension_table_serves_both_readers():
    from hanlm.formats import format_of
    from hanlm.tasks.formats import detect_format

    assert format_of("corpus.txt.gz", "corpus") == "docs"  # plain documents, gzipped
    assert detect_format(Path("ratings_train.txt")) == format_of("x.txt", "task") == "tsv"  # NSMC
    assert format_of("dump.json", "corpus") == "jsonl"  # a corpus .json is JSON lines
    assert detect_format(Path("klue-nli-v1.1_dev.json")) == "json"  # a task .json is one document
    assert format_of("sts-train.tsv.gz", "task") is None and format_of("a.xml", "corpus") is None
