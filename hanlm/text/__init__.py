"""Reading and normalising Korean text: corpora in every format hanlm accepts."""

from hanlm.text.corpus import CorpusConfig, Document, read_documents, read_texts
from hanlm.text.normalize import normalize

__all__ = ["CorpusConfig", "Document", "normalize", "read_documents", "read_texts"]
