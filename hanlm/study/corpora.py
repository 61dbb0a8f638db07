"""Two pretraining corpora of equal size in characters, free of the evaluation texts.

- review domain: ``nsmc-raw/reviews.tsv.gz``, one document per movie, one review a line; every review whose id is in the NSMC test file is dropped (the
  data README's leakage rule), then every review whose text equals an evaluation text.
- general domain: KLUE-RE train sentences (at most ``re_share`` of the characters, one document
  each) and Korean Wikipedia articles (in file order, one sentence a line). KorQuAD contexts are
  left out on purpose: a corpus file made of them would be a modified copy of KorQuAD, which its
  license forbids writing (data README).

Deduplication, for both corpora alike: a line is dropped when its key (NFC, only letters and
digits, case-folded) equals the key of an evaluation text (NSMC test reviews, KLUE-NLI premises
and hypotheses, KLUE-NER sentences) or contains one of at least ``ANCHOR`` characters (a premise
quoted inside a Wikipedia paragraph), and when it repeats a line already kept (KLUE-RE repeats a
sentence once per entity pair). Documents are then ordered by a seeded hash and taken until the
target; the last one is cut so that both corpora hold exactly ``target_chars`` characters of
text (newlines not counted).

Output (``OUT``): ``review.txt``, ``general.txt`` (hanlm's ``docs`` format: a line per
sentence/review, a blank line between documents) and ``corpora.json`` (sizes and counts).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hanlm import atomic
from hanlm.errors import HanlmError
from hanlm.text import CorpusConfig, load_ids, read_documents
from hanlm.text.normalize import normalize

logger = logging.getLogger(__name__)

ANCHOR = 16  # key characters: an evaluation text at least this long is also found inside a line
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
CORPORA = ("review", "general")


@dataclass(frozen=True)
class Sources:
    """Where the study reads ../shared/data (the same layout in a user's own copy)."""

    root: Path

    @property
    def reviews(self) -> Path:
        return self.root / "nsmc-raw" / "reviews.tsv.gz"

    @property
    def nsmc_train(self) -> Path:
        return self.root / "nsmc" / "ratings_train.txt"

    @property
    def nsmc_test(self) -> Path:
        return self.root / "nsmc" / "ratings_test.txt"

    @property
    def nli_dev(self) -> Path:
        return self.root / "klue" / "klue-nli-v1.1_dev.json"

    @property
    def ner_dev(self) -> Path:
        return self.root / "klue" / "klue-ner-v1.1_dev.tsv"

    @property
    def re_train(self) -> Path:
        return self.root / "klue-re" / "train.csv"

    @property
    def kowiki(self) -> list[Path]:
        return sorted((self.root / "kowiki").glob("kowiki*.txt*"))

    def check(self) -> None:
        needed = [self.reviews, self.nsmc_train, self.nsmc_test, self.nli_dev, self.ner_dev,
                  self.re_train]
        missing = [str(p) for p in needed if not p.is_file()]
        if not self.kowiki:
            missing.append(str(self.root / "kowiki" / "*.txt.gz"))
        if missing:
            raise HanlmError(f"shared data incomplete: missing {', '.join(missing)}",
                             path=str(self.root))


# ------------------------------------------------------------------------------ dedup


def text_key(text: str) -> str:
    """What "the same text" means here: NFC, letters and digits only, case-folded."""
    return "".join(ch for ch in normalize(text).casefold() if ch.isalnum())


def evaluation_texts(sources: Sources) -> list[str]:
    """Every text the study evaluates on, read with the tasks' own readers."""
    from hanlm.tasks.base import ReadOptions
    from hanlm.tasks.registry import get_task  # imports every task's metrics (scipy)

    read = ReadOptions()
    texts = [e.text for e in get_task("nsmc").read(sources.nsmc_test, read)]
    for e in get_task("klue-nli").read(sources.nli_dev, read):
        texts += [e.text, e.text_pair or ""]
    texts += [e.text for e in get_task("klue-ner").read(sources.ner_dev, read)]
    return [t for t in texts if t]


@dataclass
class DedupStats:
    evaluation: int = 0  # lines dropped as (or containing) an evaluation text
    repeated: int = 0  # lines dropped as repeats of a kept line
    test_ids: int = 0  # reviews dropped because their id is in the NSMC test file


class Deduper:
    """Drops lines equal to / containing an evaluation text, and repeats of kept lines."""

    def __init__(self, eval_texts: Iterable[str]):
        self.eval_keys = {k for k in map(text_key, eval_texts) if k}
        self.anchors: dict[str, list[str]] = {}
        for key in self.eval_keys:
            if len(key) >= ANCHOR:
                self.anchors.setdefault(key[:ANCHOR], []).append(key)
        self.seen: set[str] = set()
        self.stats = DedupStats()

    def is_evaluation(self, key: str) -> bool:
        if key in self.eval_keys:
            return True
        for i in range(len(key) - ANCHOR + 1):
            for full in self.anchors.get(key[i : i + ANCHOR], ()):
                if key.startswith(full, i):
                    return True
        return False

    def keep(self, line: str) -> bool:
        key = text_key(line)
        if not key:
            return False
        if self.is_evaluation(key):
            self.stats.evaluation += 1
            return False
        if key in self.seen:
            self.stats.repeated += 1
            return False
        self.seen.add(key)
        return True

    def filter(self, lines: Iterable[str]) -> list[str]:
        return [line for line in lines if self.keep(line)]


# ------------------------------------------------------------------------------ sources


def _rank(seed: int, doc_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()


def _review_rows(path: Path) -> Iterator[list[str]]:
    """Rows of the raw review TSV (not quoted: 736 reviews start with a quote character)."""
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" \
            else open(path, encoding="utf-8") as f:
        header = next(f).rstrip("\n").split("\t")
        if header[:2] != ["review_id", "movie_id"] or "review" not in header:
            raise HanlmError("expected the header review_id movie_id ... review", path=str(path))
        column = header.index("review")
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) > column:
                yield [fields[0], fields[1], fields[column]]


def review_documents(sources: Sources, deduper: Deduper, seed: int) -> list[list[str]]:
    """Reviews grouped by movie, test ids excluded, deduplicated, in seeded-hash order.

    Read here rather than with hanlm's grouping reader, which also matches the group value (a
    movie id) against the excluded review ids and would drop whole movies by coincidence.
    """
    test_ids = load_ids([str(sources.nsmc_test)])
    movies: dict[str, list[str]] = {}
    for review_id, movie_id, text in _review_rows(sources.reviews):
        if review_id in test_ids:
            deduper.stats.test_ids += 1
            continue
        text = normalize(text)
        if text and deduper.keep(text):
            movies.setdefault(movie_id, []).append(text)
    ranked = sorted(movies.items(), key=lambda item: _rank(seed, f"movie:{item[0]}"))
    return [lines for _, lines in ranked]


def split_sentences(paragraph: str) -> list[str]:
    """A cheap punctuation split: enough for encyclopedic text and for finding quoted sentences
    (kiwi, hanlm's splitter, costs ~70K characters/s, too slow for this budget)."""
    return [s for s in _SENTENCE_END.split(paragraph) if s]


def re_sentences(sources: Sources, deduper: Deduper, seed: int) -> list[list[str]]:
    """KLUE-RE train sentences, one document each, in seeded-hash order."""
    csv.field_size_limit(sys.maxsize)
    with open(sources.re_train, encoding="utf-8", newline="") as f:
        rows = [(row["id"], normalize(row["sentence"])) for row in csv.DictReader(f)]
    ranked = [(_rank(seed, f"re:{i}"), [s]) for i, s in rows if s and deduper.keep(s)]
    ranked.sort(key=lambda pair: pair[0])
    return [lines for _, lines in ranked]


def wiki_documents(sources: Sources, deduper: Deduper) -> Iterator[list[str]]:
    """Wikipedia articles in file order, one sentence a line, deduplicated."""
    reader = CorpusConfig(format="wiki")
    for doc in read_documents([str(p) for p in sources.kowiki], reader):
        lines = deduper.filter(s for p in doc.sentences for s in split_sentences(p))
        if lines:
            yield lines


# ------------------------------------------------------------------------------ assembling


def take_chars(documents: Iterable[list[str]], target: int, name: str) -> list[list[str]]:
    """Documents in order until exactly `target` characters; the last one is cut short."""
    out: list[list[str]] = []
    total = 0
    for doc in documents:
        kept = []
        for line in doc:
            room = target - total
            if room <= 0:
                break
            kept.append(line[:room])
            total += len(kept[-1])
        if kept:
            out.append(kept)
        if total >= target:
            return out
    raise HanlmError(f"the {name} corpus has only {total:,} characters after exclusion and "
                     f"deduplication; lower --target-chars below that")


def general_documents(sources: Sources, deduper: Deduper, target: int, re_share: float,
                      seed: int) -> tuple[list[list[str]], dict[str, int]]:
    """KLUE-RE sentences (up to `re_share` of `target`) then Wikipedia, mixed by a seeded hash."""
    re_docs = take_chars(re_sentences(sources, deduper, seed), int(target * re_share), "KLUE-RE") \
        if re_share > 0 else []
    re_chars = _chars(re_docs)
    wiki_docs = take_chars(wiki_documents(sources, deduper), target - re_chars, "Wikipedia")
    ranked = [(_rank(seed, f"re:{i}"), d) for i, d in enumerate(re_docs)]
    ranked += [(_rank(seed, f"wiki:{i}"), d) for i, d in enumerate(wiki_docs)]
    ranked.sort(key=lambda pair: pair[0])
    return [d for _, d in ranked], {"klue_re": re_chars, "kowiki": _chars(wiki_docs)}


def _chars(documents: list[list[str]]) -> int:
    return sum(len(line) for doc in documents for line in doc)


def write_corpus(path: Path, documents: list[list[str]]) -> dict[str, int]:
    atomic.write_text(path, "\n\n".join("\n".join(doc) for doc in documents) + "\n")
    return {"chars": _chars(documents), "documents": len(documents),
            "lines": sum(len(doc) for doc in documents)}


@dataclass
class CorpusReport:
    target_chars: int
    seed: int
    re_share: float
    evaluation_texts: int
    corpora: dict[str, dict] = field(default_factory=dict)


def build_corpora(sources: Sources, out: Path, target_chars: int, *, seed: int = 0,
                  re_share: float = 0.1) -> dict:
    """Write both corpora and ``corpora.json`` into `out`; returns the report as a dict."""
    sources.check()
    out.mkdir(parents=True, exist_ok=True)
    eval_texts = evaluation_texts(sources)
    report = CorpusReport(target_chars, seed, re_share, len(eval_texts))

    deduper = Deduper(eval_texts)
    logger.info("review corpus: reading %s", sources.reviews)
    reviews = take_chars(review_documents(sources, deduper, seed), target_chars, "review")
    report.corpora["review"] = {**write_corpus(out / "review.txt", reviews),
                                "dropped": asdict(deduper.stats)}

    deduper = Deduper(eval_texts)
    logger.info("general corpus: KLUE-RE sentences + %s", ", ".join(map(str, sources.kowiki)))
    general, parts = general_documents(sources, deduper, target_chars, re_share, seed)
    report.corpora["general"] = {**write_corpus(out / "general.txt", general),
                                 "sources": parts, "dropped": asdict(deduper.stats)}
    result = asdict(report)
    atomic.write_text(out / "corpora.json", json.dumps(result, indent=2, ensure_ascii=False))
    return result
