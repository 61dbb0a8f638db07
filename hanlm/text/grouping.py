"""From records to documents: exclusion by id (``--exclude-ids``), grouping records with equal
``--group-column`` values into one document, and splitting texts into sentences in batches."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator

from hanlm.errors import HanlmError
from hanlm.text.lines import open_binary
from hanlm.text.records import CorpusConfig, CorpusStats, RawDocument, Record, place_id
from hanlm.text.sentences import split_sentences

logger = logging.getLogger(__name__)


_SPLIT_BATCH = 1024  # texts per kiwi call: large enough for kiwi's threads, small in memory


def load_ids(paths: list[str]) -> set[str]:
    """Ids from files holding one id a line, or a TSV/CSV whose header has an ``id`` column."""
    ids: set[str] = set()
    for path in paths:
        found = set(_ids_in_file(str(path)))
        if not found:
            raise HanlmError("no ids found in the --exclude-ids file", path=str(path))
        logger.info("excluding %s ids listed in %s", f"{len(found):,}", path)
        ids |= found
    return ids


def records_to_documents(
    records: Iterable[Record], cfg: CorpusConfig, exclude: set[str], stats: CorpusStats
) -> Iterator[RawDocument]:
    kept = _keep_records(records, exclude, stats)
    if cfg.group_column is None:
        for r in kept:
            yield RawDocument(id=r.id or place_id(r.path, r.line), source=r.source,
                              texts=[r.text])
    else:
        yield from _group(kept, cfg.group_window)


def _keep_records(
    records: Iterable[Record], exclude: set[str], stats: CorpusStats
) -> Iterator[Record]:
    for r in records:
        if r.id is not None and r.id in exclude:
            stats.excluded_records += 1
        elif not r.text:
            stats.empty += 1
        else:
            stats.records += 1
            yield r


def _group(records: Iterable[Record], window: int) -> Iterator[RawDocument]:
    """Join records with equal group values, within windows of ``window`` records."""
    groups: dict[str, RawDocument] = {}
    for n, r in enumerate(records, 1):
        key = r.group or ""
        if key in groups:
            groups[key].texts.append(r.text)
        else:
            groups[key] = RawDocument(id=key, source=r.source, texts=[r.text])
        if n % window == 0:
            yield from groups.values()
            groups = {}
    yield from groups.values()


def drop_excluded_documents(
    docs: Iterable[RawDocument], exclude: set[str], stats: CorpusStats
) -> Iterator[RawDocument]:
    for doc in docs:
        if exclude and doc.id in exclude:
            stats.excluded_documents += 1
        else:
            yield doc


# ---------------------------------------------------------------- sentences and ids


def split_in_batches(docs: Iterable[RawDocument]) -> Iterator[RawDocument]:
    """Split every text into sentences, ~_SPLIT_BATCH texts per kiwi call."""
    batch: list[RawDocument] = []
    size = 0
    for doc in docs:
        batch.append(doc)
        size += len(doc.texts)
        if size >= _SPLIT_BATCH:
            yield from _split_batch(batch)
            batch, size = [], 0
    yield from _split_batch(batch)


def _split_batch(batch: list[RawDocument]) -> Iterator[RawDocument]:
    sentences = iter(split_sentences([t for doc in batch for t in doc.texts]))
    for doc in batch:
        doc.texts = [s for _ in doc.texts for s in next(sentences)]
        yield doc


def _ids_in_file(path: str) -> Iterator[str]:
    """One id a line, or the ``id`` column of a TSV/CSV header. Ids are ASCII in practice, so
    other columns are decoded leniently (a CP949 review next to an id does not matter)."""
    # Read whole (an id file is small): decoding line by line costs more than the ids.
    with open_binary(path) as f:
        try:
            data = f.read()
        except (OSError, EOFError) as e:  # corrupt or truncated gzip
            raise HanlmError(f"cannot read: {e}", path=path) from None
    lines = data.decode("utf-8", errors="replace").removeprefix("\ufeff").split("\n")
    first = next((line.strip() for line in lines if line.strip()), "")
    for delimiter in ("\t", ","):
        columns = [c.strip() for c in first.split(delimiter)]
        if len(columns) > 1 and "id" in columns:
            quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
            rows = csv.reader(lines, delimiter=delimiter, quoting=quoting)
            at = columns.index("id")
            next((row for row in rows if row), None)  # the header
            yield from (row[at].strip() for row in rows if len(row) > at and row[at].strip())
            return
    yield from (line.strip() for line in lines if line.strip())
