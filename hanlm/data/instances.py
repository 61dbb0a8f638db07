"""BERT's next-sentence-prediction pairs (google-research/bert create_pretraining_data.py,
`create_instances_from_document`), as a pure function over token arrays.

Segments are filled up to the target length (with `short_seq_prob` a shorter random target),
A is a random-length prefix of the chunk, B is either the rest (IsNext) or text from a random
other document (NotNext, 50%); segments of a NotNext chunk that were not used are put back for
the next pair, as the reference does. Two changes from the reference: a sentence longer than the
sequence is cut into pieces instead of being truncated away, and a chunk of a single segment is
split inside that segment for IsNext, where the reference always makes it NotNext. On corpora
of short documents (reviews) the reference gives ~75% NotNext; this keeps the 50/50 the paper
describes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A sentence: (token ids, word-start flags), without special tokens.
Sentence = tuple[np.ndarray, np.ndarray]


@dataclass
class TokenizedDocument:
    """A tokenized document as one array, cut into segments (sentences, or pieces of long ones).

    Pairs are ranges of these arrays: A and an IsNext B are runs of consecutive segments, so
    neither needs its segments copied together (per pair that copying and the per-token
    truncation of copies cost more CPU than the tokenizer spent on the same text)."""

    ids: np.ndarray  # int32, every segment in order
    starts: np.ndarray  # bool, True where a token starts a word
    ends: list[int]  # where each segment ends: segment k is [ends[k - 1], ends[k])

    @classmethod
    def from_sentences(cls, sentences: list[Sentence], limit: int) -> TokenizedDocument:
        """Join the sentences, cutting those longer than ``limit`` tokens into consecutive
        pieces; empty sentences are left out."""
        if not sentences:
            return cls(np.zeros(0, np.int32), np.zeros(0, bool), [])
        return cls.from_lengths(np.concatenate([s[0] for s in sentences]),
                                np.concatenate([s[1] for s in sentences]),
                                [s[0].size for s in sentences], limit)

    @classmethod
    def from_lengths(cls, ids: np.ndarray, starts: np.ndarray, lengths: list[int],
                     limit: int) -> TokenizedDocument:
        """The document whose sentences, ``lengths`` tokens each, lie back to back in ``ids``
        and ``starts`` (kept as they are, views included); cut as in ``from_sentences``."""
        ends, end = [], 0
        for length in lengths:
            ends += range(end + limit, end + length, limit)
            end += length
            if length:
                ends.append(end)
        return cls(ids.astype(np.int32, copy=False), starts.astype(bool, copy=False), ends)

    def begin(self, segment: int) -> int:
        return self.ends[segment - 1] if segment else 0

    def __len__(self) -> int:
        return len(self.ends)


@dataclass
class Instance:
    tokens_a: np.ndarray
    starts_a: np.ndarray
    tokens_b: np.ndarray
    starts_b: np.ndarray
    is_random_next: bool


def _truncate_pair(a: list[int], b: list[int], max_tokens: int, rng: np.random.Generator) -> None:
    """Trim the longer of A/B one token at a time from a random end (the reference rule).
    `a` and `b` are [begin, end) ranges, modified in place."""
    while a[1] - a[0] + b[1] - b[0] > max_tokens:
        longer = a if a[1] - a[0] > b[1] - b[0] else b
        if rng.random() < 0.5:
            longer[0] += 1
        else:
            longer[1] -= 1


def _random_b(
    docs: list[TokenizedDocument], doc_index: int, target: int, rng: np.random.Generator
) -> tuple[TokenizedDocument, list[int]]:
    other = doc_index
    for _ in range(10):
        other = int(rng.integers(len(docs)))
        if other != doc_index:
            break
    doc = docs[other]
    start = int(rng.integers(len(doc)))
    end = start
    while end < len(doc) - 1 and doc.ends[end] - doc.begin(start) < target:
        end += 1
    return doc, [doc.begin(start), doc.ends[end]]


def _split_segment(doc: TokenizedDocument, lo: int, hi: int, rng: np.random.Generator) -> list[int]:
    """Where to cut the segment [lo, hi) in two: at a random word start (any token if it is a
    single word); [lo, hi] alone if it has a single token."""
    if hi - lo < 2:
        return [lo, hi]
    cuts = np.flatnonzero(doc.starts[lo + 1 : hi]) + 1
    if cuts.size == 0:
        cuts = np.arange(1, hi - lo)
    return [lo, lo + int(rng.choice(cuts)), hi]


def pairs_from_document(
    docs: list[TokenizedDocument],
    doc_index: int,
    *,
    max_len: int,
    short_seq_prob: float,
    rng: np.random.Generator,
) -> list[Instance]:
    """NSP instances from `docs[doc_index]`; other documents of `docs` supply random Bs."""
    max_tokens = max_len - 3  # [CLS] A [SEP] B [SEP]
    document = docs[doc_index]
    target = max_tokens
    if rng.random() < short_seq_prob:
        target = int(rng.integers(2, max_tokens + 1))
    instances: list[Instance] = []
    first = 0  # the chunk's first segment
    i = 0
    while i < len(document):
        if i == len(document) - 1 or document.ends[i] - document.begin(first) >= target:
            # The chunk's segment boundaries: segments first..i (or one segment cut in two).
            bounds = [document.begin(first), *document.ends[first : i + 1]]
            random_next = len(docs) > 1 and rng.random() < 0.5
            if len(bounds) == 2 and not random_next:
                bounds = _split_segment(document, bounds[0], bounds[1], rng)
                random_next = len(bounds) == 2 and len(docs) > 1
            pieces = len(bounds) - 1
            a_end = int(rng.integers(1, pieces)) if pieces >= 2 else 1
            a = [bounds[0], bounds[a_end]]
            if random_next:
                b_doc, b = _random_b(docs, doc_index, target - (a[1] - a[0]), rng)
                i -= pieces - a_end  # put the unused segments back
            else:
                b_doc, b = document, [bounds[a_end], bounds[-1]]
            if b[1] > b[0]:
                _truncate_pair(a, b, max_tokens, rng)
                if a[1] > a[0] and b[1] > b[0]:
                    instances.append(Instance(
                        document.ids[a[0] : a[1]], document.starts[a[0] : a[1]],
                        b_doc.ids[b[0] : b[1]], b_doc.starts[b[0] : b[1]], random_next))
            first = i + 1
        i += 1
    return instances


def assemble(instances: list[Instance], *, cls_id: int, sep_id: int) -> Pairs:
    """Every instance as [CLS] A [SEP] B [SEP], back to back, in one copy for the whole list."""
    cls, sep, start = np.array([cls_id], np.int32), np.array([sep_id], np.int32), np.ones(1, bool)
    ids = [x for inst in instances for x in (cls, inst.tokens_a, sep, inst.tokens_b, sep)]
    starts = [x for inst in instances for x in (start, inst.starts_a, start, inst.starts_b, start)]
    n = len(instances)
    len_a = np.fromiter((inst.tokens_a.size + 2 for inst in instances), np.int64, n)
    len_b = np.fromiter((inst.tokens_b.size + 1 for inst in instances), np.int64, n)
    return Pairs(
        ids=np.concatenate(ids) if n else np.zeros(0, np.int32),
        word_starts=np.concatenate(starts).astype(np.uint8) if n else np.zeros(0, np.uint8),
        lengths=len_a + len_b,
        len_a=len_a,
        random_next=np.fromiter((inst.is_random_next for inst in instances), bool, n),
    )


@dataclass
class Pairs:
    """Assembled instances: flat ids and word starts, and per instance its length, the length
    of its A part ([CLS] A [SEP]) and whether B is a random segment."""

    ids: np.ndarray
    word_starts: np.ndarray
    lengths: np.ndarray
    len_a: np.ndarray
    random_next: np.ndarray


def pack_documents(docs: list[TokenizedDocument], *, max_len: int, cls_id: int, sep_id: int,
                   offset: int = 0) -> Pairs:
    """Sequences for an objective without next-sentence prediction (`mlm`, `electra`): the
    documents' tokens back to back with [SEP] between two documents, cut every `max_len - 2`
    tokens into [CLS] tokens [SEP] (RoBERTa's FULL-SENTENCES). Crossing document boundaries
    leaves no padding, and a corpus of short texts (reviews) or of a single document fills
    every sequence. `offset` tokens are taken off the front and put at the back, so another
    pass over the same documents (`--dupe-factor`) cuts them elsewhere. The last sequence may
    be shorter; no token is dropped."""
    docs = [d for d in docs if d.ids.size]
    if not docs:
        return assemble([], cls_id=cls_id, sep_id=sep_id)
    sep = np.array([sep_id], np.int32)
    # A [SEP] after every document; the last one ends up where the rotation wraps around.
    ids = np.concatenate([x for d in docs for x in (d.ids, sep)])
    starts = np.concatenate([x for d in docs for x in (d.starts, np.ones(1, bool))])
    offset %= ids.size
    keep = ids.size if offset else ids.size - 1
    ids, starts = np.roll(ids, -offset)[:keep], np.roll(starts, -offset)[:keep]
    body = max_len - 2
    cuts = range(0, ids.size, body)
    n = len(cuts)
    cls = np.array([cls_id], np.int32)
    out_ids = np.concatenate([x for c in cuts for x in (cls, ids[c:c + body], sep)])
    one = np.ones(1, bool)
    out_starts = np.concatenate([x for c in cuts for x in (one, starts[c:c + body], one)])
    lengths = np.fromiter((min(body, ids.size - c) + 2 for c in cuts), np.int64, n)
    return Pairs(ids=out_ids, word_starts=out_starts.astype(np.uint8), lengths=lengths,
                 len_a=lengths.copy(), random_next=np.zeros(n, bool))


def concatenate_pairs(parts: list[Pairs]) -> Pairs:
    """Several assembled lists as one, in order."""
    if len(parts) == 1:
        return parts[0]
    return Pairs(**{name: np.concatenate([getattr(p, name) for p in parts])
                    for name in ("ids", "word_starts", "lengths", "len_a", "random_next")})
