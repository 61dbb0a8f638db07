"""The inputs both systems train and are evaluated on, built once in a work directory.

- the reviews (all of nsmc-raw, or its first N lines in --quick mode) grouped one document per
  movie, without the reviews of the NSMC test set;
- one WordPiece tokenizer, shared by both systems (so losses compare);
- hanlm's data: `hanlm data build` with its defaults;
- the baseline's NSP examples, the way a Hugging Face user builds them once
  TextDatasetForNextSentencePrediction is gone: review i of a movie as A, and as B the next review
  of the same movie (IsNext, half the time when there is one) or a random review of another movie
  (NotNext); one example per row, truncated and padded to 128;
- the held-out masked sequences both systems are evaluated on: documents of hanlm's eval split
  (the same movies for both), in both shapes (hanlm's filled sequences and the baseline's review
  pairs), masked once with fixed seeds.

Every artefact is reused if present, keyed by its settings.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hanlm.data.batches import Collator
from hanlm.data.build import DataBuildConfig, build_dataset, is_eval
from hanlm.data.masking import MaskingConfig
from hanlm.data.shards import Sample, ShardReader
from hanlm.text import CorpusConfig, read_documents
from hanlm.tokenizer import KoreanTokenizer, TokenizerTrainConfig, train_tokenizer

logger = logging.getLogger(__name__)

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
REVIEWS = SHARED / "nsmc-raw" / "reviews.tsv.gz"
TEST_IDS = SHARED / "nsmc" / "ratings_test.txt"
MAX_LEN = 128
EVAL_SEED = 20240501


def reader_config() -> CorpusConfig:
    return CorpusConfig(text_column="review", group_column="movie_id", id_column="review_id",
                        exclude_ids=[str(TEST_IDS)])


@dataclass
class Workspace:
    root: Path
    corpus: Path
    tokenizer: Path
    data: Path
    baseline_examples: Path
    heldout: Path

    def run_inputs(self) -> dict[str, str]:
        """What every bench run reads from the workspace (the path fields of `RunSpec`)."""
        return {"tokenizer": str(self.tokenizer), "data": str(self.data),
                "baseline_examples": str(self.baseline_examples), "heldout": str(self.heldout)}


def first_lines(source: Path, out: Path, lines: int | None) -> Path:
    """The corpus itself, or a gzipped copy of its header and first `lines` records."""
    if lines is None:
        return source
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        with gzip.open(source, "rb") as src, gzip.open(tmp, "wb", compresslevel=1) as dst:
            for k, line in enumerate(src):
                if k > lines:
                    break
                dst.write(line)
        tmp.rename(out)
    return out


def prepare_tokenizer(root: Path, *, reviews: int | None, vocab_size: int, tokenizer_texts: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    corpus = first_lines(REVIEWS, root / f"reviews-{reviews or 'all'}.tsv.gz", reviews)
    tok_dir = root / f"tok-{reviews or 'all'}-v{vocab_size}"
    if not (tok_dir / "tokenizer.json").is_file():
        train_tokenizer(TokenizerTrainConfig(corpus=[str(corpus)], out=str(tok_dir), max_texts=tokenizer_texts,
                                             vocab_size=vocab_size, overwrite=True, reader=reader_config()))
    return tok_dir


def prepare(root: Path, *, reviews: int | None, vocab_size: int, tokenizer_texts: int, pairs: int,
            heldout_rows: int) -> Workspace:
    tag = ("all" if reviews is None else str(reviews)) + f"-v{vocab_size}"
    corpus = first_lines(REVIEWS, root / f"reviews-{reviews or 'all'}.tsv.gz", reviews)
    tok_dir = prepare_tokenizer(root, reviews=reviews, vocab_size=vocab_size, tokenizer_texts=tokenizer_texts)
    data = root / f"data-{tag}"
    if not (data / "meta.json").is_file():
        build_dataset(DataBuildConfig(corpus=[str(corpus)], tokenizer=str(tok_dir), out=str(data),
                                      max_len=MAX_LEN, overwrite=True, reader=reader_config()))
    # r2: held-out pairs drawn with a generator of their own (build_baseline_and_heldout)
    ws = Workspace(root, corpus, tok_dir, data, root / f"baseline-{tag}-{pairs}.pt",
                   root / f"heldout-{tag}-{heldout_rows}-r2.pt")
    if not ws.baseline_examples.is_file() or not ws.heldout.is_file():
        build_baseline_and_heldout(ws, pairs=pairs, heldout_rows=heldout_rows)
    return ws


def review_pairs(documents: list[list[str]], count: int, rng: np.random.Generator) -> tuple[list, list, list]:
    """`count` (A, B, next_sentence_label) review pairs; label 0 = IsNext, 1 = NotNext (HF)."""
    sizes = np.array([len(d) for d in documents])
    flat = np.repeat(np.arange(len(documents)), sizes), np.concatenate([np.arange(s) for s in sizes])
    picks = rng.choice(sizes.sum(), size=min(count, int(sizes.sum())), replace=False)
    a, b, labels = [], [], []
    for p in picks:
        d, i = int(flat[0][p]), int(flat[1][p])
        a.append(documents[d][i])
        if i + 1 < sizes[d] and rng.random() < 0.5:
            b.append(documents[d][i + 1])
            labels.append(0)
        else:
            other = int(rng.integers(len(documents) - 1))
            other += other >= d
            b.append(documents[other][int(rng.integers(sizes[other]))])
            labels.append(1)
    return a, b, labels


def encode_pairs(tok: KoreanTokenizer, a: list[str], b: list[str], labels: list[int]) -> dict[str, torch.Tensor]:
    """As the Hugging Face docs do it: truncate the pair to 128 and pad every row to 128."""
    enc = tok.hf()(a, b, truncation=True, max_length=MAX_LEN, padding="max_length", return_tensors="pt")
    return {"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
            "attention_mask": enc["attention_mask"], "next_sentence_label": torch.tensor(labels)}


def build_baseline_and_heldout(ws: Workspace, *, pairs: int, heldout_rows: int) -> None:
    build = DataBuildConfig(corpus=[str(ws.corpus)], tokenizer=str(ws.tokenizer), out="")
    train_docs, eval_docs = [], []
    for doc in read_documents([str(ws.corpus)], reader_config()):
        held_out = is_eval(doc.id, build.seed, build.eval_fraction)  # hanlm's own split rule
        (eval_docs if held_out else train_docs).append(doc.sentences)
    tok = KoreanTokenizer.load(ws.tokenizer)
    train_rng = np.random.default_rng(EVAL_SEED)
    torch.save(encode_pairs(tok, *review_pairs(train_docs, pairs, train_rng)), ws.baseline_examples)
    # A generator of its own: the held-out file is cached by its row count alone, so its pairs
    # must not depend on how many training pairs (steps) the run that wrote it drew first.
    heldout_rng = np.random.default_rng(EVAL_SEED + 1)
    torch.save(heldout_batches(ws, tok, eval_docs, heldout_rows, heldout_rng), ws.heldout)
    logger.info("baseline: %d NSP examples from %d train movies; held out: %d movies",
                pairs, len(train_docs), len(eval_docs))


def heldout_batches(ws: Workspace, tok: KoreanTokenizer, eval_docs: list[list[str]], rows: int,
                    rng: np.random.Generator, batch_size: int = 32) -> dict[str, list[dict]]:
    """Masked held-out batches in hanlm's sparse layout, per shape: `filled` (hanlm's eval
    instances) and `pairs` (baseline-style pairs of held-out reviews)."""
    collate = Collator(pad_id=tok.pad_id, mask_id=tok.mask_id, special_ids=tok.special_ids,
                       vocab_size=tok.vocab_size, masking=MaskingConfig(), seed=EVAL_SEED)
    reader = ShardReader(ws.data, "eval")
    filled = [reader[i] for i in range(min(rows, len(reader)))]
    enc = encode_pairs(tok, *review_pairs(eval_docs, rows, rng))
    pairs = []
    for k in range(enc["input_ids"].shape[0]):
        n = int(enc["attention_mask"][k].sum())
        ids = enc["input_ids"][k, :n].numpy().astype(np.int64)
        len_a = int((enc["token_type_ids"][k, :n] == 0).sum())
        pairs.append(Sample(ids, np.ones(n, dtype=bool), len_a, int(enc["next_sentence_label"][k])))
    out = {}
    for name, samples in (("filled", filled), ("pairs", pairs)):
        out[name] = []
        for lo in range(0, len(samples), batch_size):
            chunk = samples[lo : lo + batch_size]
            idx = np.arange(lo, lo + len(chunk))
            out[name].append(collate(chunk, idx, np.zeros(len(chunk), dtype=np.int64)))
    return out


@torch.no_grad()
def heldout_loss(bert, heldout: dict[str, list[dict]], dev: torch.device) -> dict[str, float]:
    """Token-weighted MLM loss of a BertForPreTraining on the held-out masked sequences, per
    shape and over both ("all"); the same code for both systems."""
    was_training = bert.training
    bert.eval()
    sums: dict[str, list[float]] = {}
    for name, batches in heldout.items():
        total, count = 0.0, 0
        for batch in batches:
            encoded = bert.bert(input_ids=batch["input_ids"].to(dev), token_type_ids=batch["token_type_ids"].to(dev),
                                attention_mask=batch["attention_mask"].to(dev)).last_hidden_state
            hidden = encoded.flatten(0, 1).index_select(0, batch["mlm_positions"].to(dev))
            logits = bert.cls.predictions(hidden).float()
            total += float(torch.nn.functional.cross_entropy(logits, batch["mlm_labels"].to(dev), reduction="sum"))
            count += batch["mlm_labels"].numel()
        sums[name] = [total, count]
    bert.train(was_training)
    out = {name: t / max(1, c) for name, (t, c) in sums.items()}
    out["all"] = sum(t for t, _ in sums.values()) / max(1, sum(c for _, c in sums.values()))
    return out


def describe(ws: Workspace) -> dict:
    meta = json.loads((ws.data / "meta.json").read_text())
    examples = torch.load(ws.baseline_examples)
    real = examples["attention_mask"].sum(1).float()
    return {
        "corpus": str(ws.corpus),
        "hanlm_train_instances": meta["splits"]["train"]["instances"],
        "hanlm_mean_real_tokens": meta["splits"]["train"]["tokens"] / max(1, meta["splits"]["train"]["instances"]),
        "baseline_examples": int(real.numel()),
        "baseline_mean_real_tokens": float(real.mean()),
    }
