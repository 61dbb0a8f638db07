import numpy as np
import pytest

from hanlm.data.instances import TokenizedDocument, assemble, pairs_from_document


def _docs(rng, n_docs=60, sentences=(3, 15), length=(3, 30)):
    """Token value = doc * 100000 + position in the doc, so provenance can be checked."""
    docs = []
    for d in range(n_docs):
        pos, doc = 0, []
        for _ in range(int(rng.integers(*sentences))):
            k = int(rng.integers(*length))
            ids = d * 100_000 + np.arange(pos, pos + k)
            doc.append((ids, np.ones(k, dtype=bool)))
            pos += k
        docs.append(TokenizedDocument.from_sentences(doc, limit=1000))
    return docs


def _all_instances(docs, rng, max_len=64, short=0.1):
    out = []
    for i in range(len(docs)):
        out += [(i, x) for x in pairs_from_document(docs, i, max_len=max_len, short_seq_prob=short, rng=rng)]
    return out


def test_pairs_respect_length_and_provenance():
    rng = np.random.default_rng(0)
    docs = _docs(rng)
    instances = _all_instances(docs, rng)
    assert instances
    for doc_index, inst in instances:
        assert inst.tokens_a.size >= 1 and inst.tokens_b.size >= 1
        assert inst.tokens_a.size + inst.tokens_b.size <= 64 - 3
        assert set(inst.tokens_a // 100_000) == {doc_index}
        b_docs = set(inst.tokens_b // 100_000)
        if inst.is_random_next:
            assert doc_index not in b_docs
        else:
            assert b_docs == {doc_index}
            assert inst.tokens_b.min() > inst.tokens_a.max(), "B continues A"


def test_is_next_ratio_is_about_half():
    rng = np.random.default_rng(1)
    instances = _all_instances(_docs(rng, n_docs=300), rng, short=0.0)
    ratio = np.mean([inst.is_random_next for _, inst in instances])
    assert 0.47 < ratio < 0.53


def test_fill_to_target_length():
    rng = np.random.default_rng(2)
    instances = _all_instances(_docs(rng, n_docs=100, sentences=(20, 40)), rng, max_len=128, short=0.0)
    lengths = np.array([i.tokens_a.size + i.tokens_b.size for _, i in instances])
    assert np.median(lengths) >= 0.8 * 125


def test_deterministic_for_a_seed():
    docs = _docs(np.random.default_rng(3))
    a = _all_instances(docs, np.random.default_rng(9))
    b = _all_instances(docs, np.random.default_rng(9))
    assert len(a) == len(b)
    assert all(np.array_equal(x.tokens_a, y.tokens_a) and np.array_equal(x.tokens_b, y.tokens_b) for (_, x), (_, y) in zip(a, b, strict=True))


def test_long_sentences_are_cut_and_empty_ones_dropped():
    sentences = [(np.arange(250), np.ones(250, bool)), (np.arange(0), np.ones(0, bool)),
                 (np.arange(250, 260), np.ones(10, bool))]
    doc = TokenizedDocument.from_sentences(sentences, 100)
    assert doc.ends == [100, 200, 250, 260] and len(doc) == 4
    assert np.array_equal(doc.ids, np.arange(260))
    assert not TokenizedDocument.from_sentences([(np.arange(0), np.ones(0, bool))], 100)


def test_assemble_layout():
    rng = np.random.default_rng(4)
    instances = pairs_from_document(_docs(rng, 5), 0, max_len=32, short_seq_prob=0, rng=rng)
    pairs = assemble(instances, cls_id=2, sep_id=3)
    at = 0
    for inst, length, len_a, random_next in zip(instances, pairs.lengths, pairs.len_a, pairs.random_next,
                                                strict=True):
        ids = pairs.ids[at : at + length]
        assert ids[0] == 2 and ids[len_a - 1] == 3 and ids[-1] == 3
        assert np.array_equal(ids[1 : len_a - 1], inst.tokens_a)
        assert np.array_equal(ids[len_a : length - 1], inst.tokens_b)
        assert length == inst.tokens_a.size + inst.tokens_b.size + 3 and random_next == inst.is_random_next
        at += length
    assert pairs.word_starts.size == pairs.ids.size == at


def test_short_documents_still_half_is_next():
    """Documents of one or two short segments (reviews): the reference would give ~75% NotNext."""
    rng = np.random.default_rng(6)
    instances = _all_instances(_docs(rng, n_docs=2000, sentences=(1, 3), length=(3, 12)), rng, short=0.0)
    assert 0.45 < np.mean([inst.is_random_next for _, inst in instances]) < 0.55
    for _, inst in instances:
        if not inst.is_random_next:
            assert inst.tokens_b.min() > inst.tokens_a.max()


@pytest.mark.parametrize("n_docs", [1])
def test_single_document_gives_only_is_next(n_docs):
    rng = np.random.default_rng(5)
    docs = _docs(rng, n_docs=n_docs, sentences=(10, 11))
    instances = pairs_from_document(docs, 0, max_len=64, short_seq_prob=0, rng=rng)
    assert instances and not any(i.is_random_next for i in instances)


def test_packing_fills_every_sequence_across_documents_and_drops_no_token():
    from hanlm.data.instances import pack_documents

    def doc(ids):
        return TokenizedDocument.from_sentences(
            [(np.asarray(ids), np.ones(len(ids), bool))] if len(ids) else [], limit=1000)

    docs = [doc(range(10, 15)), doc(range(20, 27)), doc([])]
    packed = pack_documents(docs, max_len=6, cls_id=1, sep_id=2)
    rows = np.split(packed.ids, np.cumsum(packed.lengths)[:-1])
    assert [r.tolist() for r in rows] == [[1, 10, 11, 12, 13, 2], [1, 14, 2, 20, 21, 2],
                                          [1, 22, 23, 24, 25, 2], [1, 26, 2]]
    assert (packed.len_a == packed.lengths).all() and not packed.random_next.any()
    # another pass cuts elsewhere, with a [SEP] where the rotation joins the last document to the first
    again = pack_documents(docs, max_len=6, cls_id=1, sep_id=2, offset=3)
    body = [t for t in again.ids.tolist() if t != 1]
    assert body == [13, 14, 2, 20, 2, 21, 22, 23, 24, 2, 25, 26, 2, 10, 2, 11, 12, 2]
    assert sorted(t for t in again.ids.tolist() if t > 2) == sorted(
        t for t in packed.ids.tolist() if t > 2)
