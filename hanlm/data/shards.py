"""On-disk format of built pretraining data: memory-mapped numpy arrays, one folder a shard.

``DATA/{train,eval}/shard-00000/`` holds
  input_ids.npy    flat [CLS] A [SEP] B [SEP] token ids of every instance (uint16 if the vocab fits)
  word_starts.npy  flat uint8, 1 where a token starts a word (for whole-word masking)
  offsets.npy      int64 [n+1], instance i is input_ids[offsets[i]:offsets[i+1]]
  len_a.npy        int16 [n], tokens with token_type 0 ([CLS] A [SEP])
  nsp_labels.npy   int8 [n], 1 = B is a random segment (NotNext), Hugging Face's convention
Shards are opened with ``mmap_mode="r"``: a corpus larger than memory trains without loading it.
Each shard directory appears atomically, and ``DATA/meta.json`` last, when the build is complete.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hanlm import atomic
from hanlm.data.instances import Pairs
from hanlm.errors import HanlmError

ARRAYS = ("input_ids", "word_starts", "offsets", "len_a", "nsp_labels")


def write_shard(directory: Path, pairs: Pairs, *, vocab_size: int) -> dict[str, int]:
    """Write assembled instances as one shard, atomically."""
    id_dtype = np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32
    offsets = np.zeros(pairs.lengths.size + 1, dtype=np.int64)
    np.cumsum(pairs.lengths, out=offsets[1:])
    arrays = {
        "input_ids": pairs.ids.astype(id_dtype),
        "word_starts": pairs.word_starts.astype(np.uint8, copy=False),
        "offsets": offsets,
        "len_a": pairs.len_a.astype(np.int16),
        "nsp_labels": pairs.random_next.astype(np.int8),
    }
    with atomic.directory(directory) as tmp:
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array)
    return {
        "instances": int(pairs.lengths.size),
        "tokens": int(offsets[-1]),
        "random_next": int(arrays["nsp_labels"].sum()),
    }


@dataclass
class Sample:
    input_ids: np.ndarray
    word_starts: np.ndarray
    len_a: int
    nsp_label: int


class ShardReader:
    """Random access to the instances of one split across its shards (memory-mapped)."""

    def __init__(self, data_dir: str | Path, split: str):
        self.root = Path(data_dir) / split
        self.shards = []
        if self.root.is_dir():
            for shard in sorted(self.root.glob("shard-*")):
                try:
                    self.shards.append(
                        {n: np.load(shard / f"{n}.npy", mmap_mode="r") for n in ARRAYS}
                    )
                except (OSError, ValueError) as e:
                    raise HanlmError(f"unreadable shard ({e})", path=str(shard)) from None
        counts = [len(s["len_a"]) for s in self.shards]
        self._starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64).tolist()

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = bisect_right(self._starts, index) - 1
        shard = self.shards[k]
        i = index - self._starts[k]
        lo, hi = int(shard["offsets"][i]), int(shard["offsets"][i + 1])
        return Sample(
            input_ids=np.asarray(shard["input_ids"][lo:hi], dtype=np.int64),
            word_starts=np.asarray(shard["word_starts"][lo:hi], dtype=bool),
            len_a=int(shard["len_a"][i]),
            nsp_label=int(shard["nsp_labels"][i]),
        )


def read_meta(data_dir: str | Path) -> dict:
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise HanlmError(
            "not a built data directory (no meta.json; run `hanlm data build` first, or it did "
            "not finish)",
            path=str(data_dir),
        )
    return json.loads(path.read_text(encoding="utf-8"))
