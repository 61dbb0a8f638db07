"""Reading and normalising Korean text: corpora in every format hanlm accepts."""

from hanlm.text.corpus import (
    SKIPPED_FILE,
    CorpusConfig,
    CorpusStats,
    Document,
    batched,
    load_ids,
    read_documents,
    read_texts,
)
from hanlm.text.normalize import NormalizeStats, normalize
from hanlm.text.sentences import split_sentences

__all__ = [
    "SKIPPED_FILE",
    "CorpusConfig",
    "CorpusStats",
    "Document",
    "batched",
    "NormalizeStats",
    "load_ids",
    "normalize",
    "read_documents",
    "read_texts",
    "split_sentences",
]
