"""Every official task file, in its published layout (tests/official_layouts.py), reads whole
through the shared reading path (`hanlm.tasks.examples.read_examples`), whatever its line breaks
and byte-order mark; ids that repeat within a file key its examples by line instead."""

from __future__ import annotations

import logging

import pytest
from official_layouts import KORNLI_SNLI_NO_GOLD_LINE, PUBLISHED, task_of, variants

from hanlm.errors import HanlmError
from hanlm.tasks.base import ReadOptions
from hanlm.tasks.examples import read_examples
from hanlm.tasks.registry import get_task

READ_WHOLE = [name for name in PUBLISHED if name != "kornli-snli"]


def _read(tmp_path, layout: str, variant: str = "lf", **options):
    name, text = PUBLISHED[layout]
    path = tmp_path / variant / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(variants(text)[variant])
    read = ReadOptions(**options)
    return path, read, read_examples(get_task(task_of(layout)), path, read)


def _content(example) -> dict:
    return {k: v for k, v in vars(example).items() if k != "line"}


@pytest.mark.parametrize("layout", READ_WHOLE)
def test_published_layout_reads_whole_in_every_variant(tmp_path, layout):
    _, read, examples = _read(tmp_path, layout)
    assert examples and not read.skipped
    for variant in ("crlf", "bom-crlf"):
        _, read, again = _read(tmp_path, layout, variant)
        assert [_content(e) for e in again] == [_content(e) for e in examples] and not read.skipped


def test_korsts_ids_repeated_across_filename_and_year_key_examples_by_line(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        path, _, examples = _read(tmp_path, "korsts")
    assert [e.id for e in examples] == ["2", "3", "4", "5"]
    assert [e.label for e in examples] == [5.0, 3.8, 0.5, 2.4]
    assert examples[3].text == '"사랑은 전쟁"이라고 그가 말했다.'
    assert examples[3].text_pair == '그는 "평화를 말했다.'
    assert "'0004' (lines 3 and 4)" in caplog.text and "keyed by their line" in caplog.text


def test_unique_ids_stay_the_keys(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        _, _, nsmc = _read(tmp_path, "nsmc")
        _, _, nli = _read(tmp_path, "klue-nli")
        _, _, squad = _read(tmp_path, "korquad")
    assert [e.id for e in nsmc] == ["9976970", "3819312", "10265843", "9045019"]
    assert [e.id for e in nli] == ["klue-nli-v1_dev_00000", "klue-nli-v1_dev_00001"]
    assert [e.id for e in squad] == ["6548850-0-0", "6548850-0-1"]
    assert "keyed by their line" not in caplog.text


def test_repeated_ids_without_lines_are_keyed_by_position(tmp_path):
    name, text = PUBLISHED["korquad"]
    path = tmp_path / name
    path.write_text(text.replace("6548850-0-1", "6548850-0-0"), encoding="utf-8")
    examples = read_examples(get_task("korquad"), path, ReadOptions())
    assert [e.id for e in examples] == ["record-1", "record-2"]


def test_quotes_in_tsv_sentences_are_text(tmp_path):
    _, _, mnli = _read(tmp_path, "kornli-mnli")
    assert [e.text[0] for e in mnli] == ["개", '"', "그"] and len(mnli) == 3
    _, _, nsmc = _read(tmp_path, "nsmc")
    assert nsmc[1].text.startswith('"흠') and nsmc[2].text == ""


def test_snli_no_gold_label_is_a_line_error_or_a_listed_skip(tmp_path):
    with pytest.raises(HanlmError, match="'-' marks a pair whose annotators did not agree") as e:
        _read(tmp_path, "kornli-snli")
    assert f":{KORNLI_SNLI_NO_GOLD_LINE}:" in str(e.value)
    _, read, examples = _read(tmp_path, "kornli-snli", "bom-crlf", on_error="skip")
    assert [s.line for s in read.skipped] == [KORNLI_SNLI_NO_GOLD_LINE]
    assert len(examples) == 4 and examples[2].text_pair == "N/A"
    assert examples[3].text == '"그 남자는 웃고 있다'


def test_empty_label_says_it_is_empty(tmp_path):
    path = tmp_path / "ratings.txt"
    path.write_text("id\tdocument\tlabel\n1\t좋다\t\n", encoding="utf-8")
    with pytest.raises(HanlmError, match="the label is empty"):
        get_task("nsmc").read(path, ReadOptions())
