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
class Instance:
    tokens_a: np.ndarray
    starts_a: np.ndarray
    tokens_b: np.ndarray
    starts_b: np.ndarray
    is_random_next: bool


def split_long(sentences: list[Sentence], limit: int) -> list[Sentence]:
    """Cut sentences longer than `limit` tokens into consecutive pieces."""
    out: list[Sentence] = []
    for ids, starts in sentences:
        if ids.size == 0:
            continue
        for lo in range(0, ids.size, limit):
            out.append((ids[lo : lo + limit], starts[lo : lo + limit]))
    return out


def _concat(segments: list[Sentence]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.concatenate([s[0] for s in segments]),
        np.concatenate([s[1] for s in segments]),
    )


def _truncate_pair(a: list, b: list, max_tokens: int, rng: np.random.Generator) -> None:
    """Trim the longer of A/B one token at a time from a random end (the reference rule).
    `a` and `b` are [ids, starts] lists, modified in place."""
    while a[0].size + b[0].size > max_tokens:
        longer = a if a[0].size > b[0].size else b
        if rng.random() < 0.5:
            longer[0], longer[1] = longer[0][1:], longer[1][1:]
        else:
            longer[0], longer[1] = longer[0][:-1], longer[1][:-1]


def _random_b(
    docs: list[list[Sentence]], doc_index: int, target: int, rng: np.random.Generator
) -> list[Sentence]:
    other = doc_index
    for _ in range(10):
        other = int(rng.integers(len(docs)))
        if other != doc_index:
            break
    doc = docs[other]
    start = int(rng.integers(len(doc)))
    picked, length = [], 0
    for segment in doc[start:]:
        picked.append(segment)
        length += segment[0].size
        if length >= target:
            break
    return picked


def _split_segment(segment: Sentence, rng: np.random.Generator) -> list[Sentence]:
    """Cut one segment in two at a random word start (any token if it is a single word)."""
    ids, starts = segment
    if ids.size < 2:
        return [segment]
    cuts = np.flatnonzero(starts[1:]) + 1
    if cuts.size == 0:
        cuts = np.arange(1, ids.size)
    cut = int(rng.choice(cuts))
    return [(ids[:cut], starts[:cut]), (ids[cut:], starts[cut:])]


def pairs_from_document(
    docs: list[list[Sentence]],
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
    chunk: list[Sentence] = []
    length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        length += document[i][0].size
        if i == len(document) - 1 or length >= target:
            random_next = len(docs) > 1 and rng.random() < 0.5
            if len(chunk) == 1 and not random_next:
                chunk = _split_segment(chunk[0], rng)
                random_next = len(chunk) == 1 and len(docs) > 1
            a_end = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
            a = list(_concat(chunk[:a_end]))
            if random_next:
                is_random = True
                b_segments = _random_b(docs, doc_index, target - a[0].size, rng)
                i -= len(chunk) - a_end  # put the unused segments back
            else:
                is_random = False
                b_segments = chunk[a_end:]
            if b_segments:
                b = list(_concat(b_segments))
                _truncate_pair(a, b, max_tokens, rng)
                if a[0].size and b[0].size:
                    instances.append(Instance(a[0], a[1], b[0], b[1], is_random))
            chunk, length = [], 0
        i += 1
    return instances


def assemble(instance: Instance, *, cls_id: int, sep_id: int) -> tuple[np.ndarray, np.ndarray, int]:
    """[CLS] A [SEP] B [SEP] -> (ids, word starts, length of the A part incl. [CLS]/[SEP])."""
    ids = np.concatenate(
        ([cls_id], instance.tokens_a, [sep_id], instance.tokens_b, [sep_id])
    ).astype(np.int32)
    starts = np.concatenate(([1], instance.starts_a, [1], instance.starts_b, [1])).astype(np.uint8)
    return ids, starts, instance.tokens_a.size + 2
