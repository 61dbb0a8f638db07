"""`hanlm data build`: documents -> NSP shards; determinism, exclusion, workers, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hanlm.data.build import DataBuildConfig, build_dataset
from hanlm.data.shards import ShardReader, read_meta
from hanlm.demo import embedded_corpus
from hanlm.errors import HanlmError
from hanlm.text import CorpusConfig
from hanlm.tokenizer import KoreanTokenizer, TokenizerTrainConfig, train_tokenizer

LINES = [line.strip() for line in embedded_corpus().read_text(encoding="utf-8").splitlines() if len(line.strip()) > 10]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "tok"
    return train_tokenizer(TokenizerTrainConfig(corpus=[str(embedded_corpus())], out=str(out),
                                                vocab_size=500, min_frequency=1, reader=CorpusConfig()))


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    """A review-style TSV: 40 'movies', rows interleaved as in nsmc-raw."""
    path = tmp_path_factory.mktemp("corpus") / "reviews.tsv"
    rows = ["review_id\tmovie_id\treview"]
    for i, line in enumerate(LINES[:320]):
        rows.append(f"{1000 + i}\t{i % 40}\t{line}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _build(corpus, tok, out, **kw) -> Path:
    reader = CorpusConfig(text_column="review", group_column="movie_id", id_column="review_id",
                          exclude_ids=kw.pop("exclude_ids", []))
    defaults = dict(max_len=48, workers=1, chunk_chars=3000, eval_fraction=0.1, reader=reader)
    return build_dataset(DataBuildConfig(corpus=[str(corpus)], tokenizer=str(tok), out=str(out), **{**defaults, **kw}))


def _all_ids(data: Path, split: str = "train") -> list[np.ndarray]:
    reader = ShardReader(data, split)
    return [reader[i].input_ids for i in range(len(reader))]


def test_build_writes_self_describing_shards(reviews, tokenizer, tmp_path):
    data = _build(reviews, tokenizer, tmp_path / "d")
    meta = read_meta(data)
    tok = KoreanTokenizer.load(data / "tokenizer")
    assert meta["tokenizer_fingerprint"] == tok.fingerprint
    assert meta["shards"] > 1 and meta["splits"]["train"]["instances"] > 0
    reader = ShardReader(data, "train")
    for i in range(len(reader)):
        s = reader[i]
        assert s.input_ids[0] == tok.cls_id and s.input_ids[-1] == tok.sep_id
        assert s.input_ids[s.len_a - 1] == tok.sep_id
        assert s.input_ids.size <= 48 and s.word_starts.size == s.input_ids.size
    ratio = meta["splits"]["train"]["random_next"] / meta["splits"]["train"]["instances"]
    assert 0.4 < ratio < 0.6


_KIWI_AFTER_KIWI = """
import sys
from pathlib import Path
from hanlm.data.build import DataBuildConfig, build_dataset
from hanlm.data.shards import ShardReader
from hanlm.text import CorpusConfig
from hanlm.tokenizer import TokenizerTrainConfig, train_tokenizer

def main(corpus, out):
    reader = CorpusConfig(text_column="review", group_column="movie_id", id_column="review_id")
    # Kiwi runs in this process first, as when `hanlm study` trains the tokenizer
    tok = train_tokenizer(TokenizerTrainConfig(corpus=[corpus], out=str(out / "tok"),
                          vocab_size=500, min_frequency=1, pretokenize="kiwi", reader=reader))
    shards = []
    for workers in (1, 2):
        data = build_dataset(DataBuildConfig(corpus=[corpus], tokenizer=str(tok), max_len=48,
                                             out=str(out / f"w{workers}"), workers=workers,
                                             chunk_chars=3000, eval_fraction=0.1, reader=reader))
        built = ShardReader(data, "train")
        shards.append([built[i].input_ids.tolist() for i in range(len(built))])
    print(len(shards[0]), shards[0] == shards[1])

if __name__ == "__main__":  # spawned workers import this file
    main(sys.argv[1], Path(sys.argv[2]))
"""


def test_kiwi_workers_start_after_kiwi_ran_in_this_process(reviews, tmp_path):
    """Kiwi does not survive fork: the build's kiwi workers are spawned, so a build after a
    tokenizer training in the same process finishes, with the shards of a one-worker build."""
    script = tmp_path / "build.py"
    script.write_text(_KIWI_AFTER_KIWI, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), str(reviews), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    count, same = done.stdout.split()[-2:]
    assert int(count) > 10 and same == "True"


def test_same_seed_same_shards_any_worker_count(reviews, tokenizer, tmp_path):
    one = _all_ids(_build(reviews, tokenizer, tmp_path / "a", workers=1))
    two = _all_ids(_build(reviews, tokenizer, tmp_path / "b", workers=2))
    other = _all_ids(_build(reviews, tokenizer, tmp_path / "c", workers=1, seed=7))
    assert len(one) == len(two) and all(np.array_equal(x, y) for x, y in zip(one, two, strict=True))
    assert len(one) != len(other) or not all(np.array_equal(x, y) for x, y in zip(one, other, strict=True))


def test_pieces_tokenized_while_reading_give_the_same_shards(reviews, tokenizer, tmp_path, monkeypatch):
    from hanlm.data import chunks

    whole = _all_ids(_build(reviews, tokenizer, tmp_path / "whole", workers=2))
    monkeypatch.setattr(chunks, "PIECE_CHARS", 500)  # several pieces per chunk, and across chunks
    for workers in (1, 2):
        pieces = _all_ids(_build(reviews, tokenizer, tmp_path / f"pieces-{workers}", workers=workers))
        assert len(pieces) == len(whole)
        assert all(np.array_equal(x, y) for x, y in zip(whole, pieces, strict=True))


def test_the_held_out_split_does_not_depend_on_where_the_corpus_lies(tokenizer, tmp_path, monkeypatch):
    """Documents without ids of their own are held out by file name and line, not by the path
    as given: the same file read from another folder, or through a relative path, gives the
    same train and eval shards (an absolute path once changed the split of the whole study)."""
    text = "\n\n".join("\n".join(LINES[i : i + 4]) for i in range(0, 240, 4)) + "\n"
    builds = []
    for folder in ("a", "b/c"):
        corpus = tmp_path / folder / "corpus.txt"
        corpus.parent.mkdir(parents=True)
        corpus.write_text(text, encoding="utf-8")
        builds.append((corpus, tmp_path / f"out-{len(builds)}"))
    monkeypatch.chdir(tmp_path / "b")
    builds.append((Path("c/corpus.txt"), tmp_path / "out-relative"))
    for corpus, out in builds:
        build_dataset(DataBuildConfig(corpus=[str(corpus)], tokenizer=str(tokenizer), out=str(out),
                                      max_len=48, workers=1, eval_fraction=0.2,
                                      reader=CorpusConfig(format="docs")))
    first = builds[0][1]
    assert len(ShardReader(first, "eval")) > 0
    for _, out in builds[1:]:
        for split in ("train", "eval"):
            assert [a.tolist() for a in _all_ids(out, split)] == [a.tolist() for a in _all_ids(first, split)]


@pytest.mark.parametrize("sizes", [[5, 5, 5, 5], [10, 1], [1, 1, 10, 1], [10, 10, 10], [3]])
def test_chunks_close_at_the_size_and_a_last_lone_document_joins_the_chunk_before(sizes):
    from hanlm.data.chunks import assign_chunks
    from hanlm.text import Document

    docs = [Document(id=str(i), sentences=["가" * n], source="") for i, n in enumerate(sizes)]
    expected, index, count, chars = [], 0, 0, 0
    for n in sizes:  # the rule, spelled out: close after >= 10 characters and >= 2 documents
        expected.append(index)
        count, chars = count + 1, chars + n
        if chars >= 10 and count >= 2:
            index, count, chars = index + 1, 0, 0
    if len(expected) > 1 and expected.count(expected[-1]) == 1 and expected[-1] > 0:
        expected[-1] -= 1
    assert [i for i, _ in assign_chunks(docs, 10)] == expected
    assert [d.id for _, d in assign_chunks(docs, 10)] == [d.id for d in docs]


def test_excluded_ids_never_reach_the_shards(reviews, tokenizer, tmp_path):
    excluded = tmp_path / "test_ids.txt"
    # the NSMC test-file layout: id, document, label
    excluded.write_text("id\tdocument\tlabel\n" + "".join(f"{1000 + i}\tx\t1\n" for i in range(0, 320, 2)))
    data = _build(reviews, tokenizer, tmp_path / "d", exclude_ids=[str(excluded)], eval_fraction=0.0)
    tok = KoreanTokenizer.load(data / "tokenizer")
    kept_text = {LINES[i] for i in range(1, 320, 2)}
    dropped = [LINES[i] for i in range(0, 320, 2) if LINES[i] not in kept_text]
    built = {tuple(ids.tolist()) for ids in _all_ids(data)}
    flat = np.concatenate([np.array(b) for b in built])
    for text in dropped[:20]:
        (ids, _), = tok.encode_words([text])
        if ids.size < 6:
            continue
        window = np.lib.stride_tricks.sliding_window_view(flat, ids.size)
        assert not (window == ids).all(axis=1).any(), f"excluded review leaked: {text}"


def test_resume_reuses_finished_shards(reviews, tokenizer, tmp_path):
    out = tmp_path / "d"
    data = _build(reviews, tokenizer, out)
    first = _all_ids(data)
    marker = sorted((out / "chunks").glob("*.json"))[0]
    shard = out / "train" / f"shard-{marker.stem}"
    stamp = shard.stat().st_mtime_ns
    (out / "meta.json").unlink()  # as if killed before the end
    _build(reviews, tokenizer, out, resume=True)
    assert shard.stat().st_mtime_ns == stamp, "a finished shard was rebuilt"
    assert all(np.array_equal(x, y) for x, y in zip(first, _all_ids(out), strict=True))


def test_refuses_a_non_empty_output_and_a_single_document(reviews, tokenizer, tmp_path):
    _build(reviews, tokenizer, tmp_path / "d")
    with pytest.raises(HanlmError, match="not empty"):
        _build(reviews, tokenizer, tmp_path / "d")
    single = tmp_path / "one.txt"
    single.write_text("\n".join(LINES[:30]) + "\n", encoding="utf-8")
    with pytest.raises(HanlmError, match="at least two documents"):
        build_dataset(DataBuildConfig(corpus=[str(single)], tokenizer=str(tokenizer), out=str(tmp_path / "s"), workers=1))


def test_cli_errors_are_one_line(tmp_path, tokenizer):
    bad = tmp_path / "cp949.txt"
    bad.write_bytes("대한민국은 민주공화국이다.\n\n국민은 주권자다.\n".encode("cp949"))
    for corpus, expected in ((bad, "--encoding"), (tmp_path / "missing.txt", "not found")):
        r = subprocess.run([sys.executable, "-m", "hanlm", "data", "build", str(corpus), "--tokenizer",
                            str(tokenizer), "--out", str(tmp_path / "o")], capture_output=True, text=True)
        assert r.returncode == 2
        assert expected in r.stderr and str(corpus.name) in r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def _with_bad_rows(reviews: Path, path: Path) -> Path:
    """The review TSV with rows of a wrong field count at lines 251 and 301."""
    rows = reviews.read_text(encoding="utf-8").splitlines(keepends=True)
    for line in (251, 301):
        rows.insert(line - 1, "a row without its tabs\n")
    path.write_text("".join(rows), encoding="utf-8")
    return path


def _skip_build(corpus: Path, tok: Path, out: Path, **kw) -> Path:
    reader = CorpusConfig(text_column="review", id_column="review_id",
                          on_error=kw.pop("on_error", "skip"))
    return build_dataset(DataBuildConfig(corpus=[str(corpus)], tokenizer=str(tok), out=str(out),
                                         max_len=48, chunk_chars=3000, reader=reader, **kw))


def test_skip_report_is_the_same_for_any_workers_and_after_resume(reviews, tokenizer, tmp_path):
    corpus = _with_bad_rows(reviews, tmp_path / "bad.tsv")
    one = _skip_build(corpus, tokenizer, tmp_path / "one", workers=1)
    two = _skip_build(corpus, tokenizer, tmp_path / "two", workers=2)
    report = (one / "skipped.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in report.splitlines()]
    assert [(r["file"], r["line"]) for r in rows] == [(str(corpus), 251), (str(corpus), 301)]
    assert all("1 fields but the header has 3" in r["reason"] for r in rows)
    assert (two / "skipped.jsonl").read_text(encoding="utf-8") == report
    assert read_meta(one)["skipped"] == read_meta(two)["skipped"] == 2
    # the default stops at line 251 after finishing some chunks; resuming with skip completes it
    resumed = tmp_path / "resumed"
    with pytest.raises(HanlmError, match=":251: 1 fields"):
        _skip_build(corpus, tokenizer, resumed, workers=1, on_error="raise")
    assert list((resumed / "chunks").glob("*.json")) and not (resumed / "skipped.jsonl").exists()
    _skip_build(corpus, tokenizer, resumed, workers=1, resume=True)
    assert (resumed / "skipped.jsonl").read_text(encoding="utf-8") == report
    assert all(np.array_equal(x, y)
               for x, y in zip(_all_ids(one), _all_ids(resumed), strict=True))


def test_clean_corpus_under_skip_writes_no_report(reviews, tokenizer, tmp_path):
    data = _skip_build(reviews, tokenizer, tmp_path / "d", workers=1)
    assert read_meta(data)["skipped"] == 0 and not (data / "skipped.jsonl").exists()


def test_cli_on_error_skip_end_to_end(tmp_path, tokenizer):
    lines = [json.dumps({"text": line}, ensure_ascii=False) for line in LINES[:40]]
    lines[10] = '{"text": "cut off'
    lines[20] = '["a list"]'
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = [sys.executable, "-m", "hanlm", "data", "build", str(corpus), "--tokenizer",
            str(tokenizer), "--max-len", "48", "--workers", "1"]
    r = subprocess.run([*args, "--out", str(tmp_path / "raise")], capture_output=True, text=True)
    assert r.returncode == 2 and f"{corpus}:11: malformed JSON" in r.stderr, r.stderr
    out = tmp_path / "skip"
    r = subprocess.run([*args, "--out", str(out), "--on-error", "skip"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert f"skipped 2 bad records (--on-error skip); listed in {out / 'skipped.jsonl'}" in r.stderr
    rows = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rows] == [11, 21]
    meta = read_meta(out)
    assert meta["skipped"] == 2 and meta["on_error"] == "skip" and meta["documents"] == 38


@pytest.mark.shared_data
@pytest.mark.slow
def test_full_review_corpus(shared_data, tmp_path):
    """Tokenizer + data build on all 712K reviews without the NSMC test ids; figures -> docs."""
    import time

    import psutil

    corpus = shared_data / "nsmc-raw" / "reviews.tsv.gz"
    test_ids = shared_data / "nsmc" / "ratings_test.txt"
    reader = CorpusConfig(text_column="review", group_column="movie_id", id_column="review_id",
                          exclude_ids=[str(test_ids)])
    started = time.time()
    tok = train_tokenizer(TokenizerTrainConfig(corpus=[str(corpus)], out=str(tmp_path / "tok"),
                                               vocab_size=32000, reader=reader))
    tok_seconds = time.time() - started
    started = time.time()
    data = build_dataset(DataBuildConfig(corpus=[str(corpus)], tokenizer=str(tok), out=str(tmp_path / "data"),
                                         max_len=128, reader=reader))
    build_seconds = time.time() - started
    meta = read_meta(data)
    assert meta["splits"]["train"]["instances"] > 50_000
    assert meta["documents"] > 14_000
    figures = {
        "tokenizer_seconds": round(tok_seconds, 1),
        "build_seconds": round(build_seconds, 1),
        "mb_per_second": round(meta["chars"] * 3 / 1e6 / build_seconds, 2),
        "train_instances": meta["splits"]["train"]["instances"],
        "train_tokens": meta["splits"]["train"]["tokens"],
        "peak_rss_mb_children": round(psutil.Process().memory_info().rss / 2**20),
    }
    (tmp_path / "figures.json").write_text(json.dumps(figures))
    print("FULL-CORPUS FIGURES", json.dumps(figures))
