"""WikiExtractor output: ``<doc id=".." url=".." title="..">`` ... ``</doc>`` blocks, one paragraph
a line; one document per block, its title line dropped, its id the ``id`` attribute."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Iterator

from hanlm.errors import HanlmError
from hanlm.text.normalize import normalize
from hanlm.text.records import CorpusConfig, CorpusStats, RawDocument, place_id, reject_record

logger = logging.getLogger(__name__)


_ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')


def read_wiki(
    path: str, lines: Iterable[tuple[int, str]], cfg: CorpusConfig, stats: CorpusStats
) -> Iterator[RawDocument]:
    """WikiExtractor blocks; under --on-error skip, a ``<doc>`` never closed before the next
    one is skipped whole, and stray ``</doc>`` tags and text outside a block line by line."""
    doc: RawDocument | None = None
    title: str | None = None  # still to be dropped if it is the first line
    for lineno, line in lines:
        tag = line.strip()
        if tag.startswith("<doc ") or tag == "<doc>":
            if doc is not None:
                error = HanlmError(
                    f"<doc> opened before the one at {doc.source} was closed",
                    path=path,
                    line=lineno,
                )
                reject_record(error, cfg, stats)
                stats.records -= len(doc.texts)
            attributes = dict(_ATTRIBUTE.findall(tag))
            doc = RawDocument(
                id=attributes.get("id") or place_id(path, lineno), source=f"{path}:{lineno}",
                texts=[],
            )
            title = normalize(html.unescape(attributes.get("title", "")))
            continue
        if tag == "</doc>":
            if doc is None:
                error = HanlmError("</doc> without an opening <doc ...>", path=path, line=lineno)
                reject_record(error, cfg, stats)
                continue
            yield doc
            doc = None
            continue
        text = normalize(line, stats.normalize)
        if not text:
            continue
        if doc is None:
            error = HanlmError(
                "text outside a <doc ...> block: not WikiExtractor output? (pass --format docs)",
                path=path,
                line=lineno,
            )
            reject_record(error, cfg, stats)
            continue
        if title is not None and text == title:
            title = None
            continue
        title = None
        stats.records += 1
        doc.texts.append(text)
    if doc is not None:
        logger.warning("%s: <doc> at %s is never closed (truncated file?); kept", path, doc.source)
        yield doc
