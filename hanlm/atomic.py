"""Atomic writes: a killed process never leaves a file or directory that a later run accepts.

Write to a temporary name in the same directory, fsync, then rename (atomic on POSIX). Also the
file digest that checkpoints and caches use to tell a complete, unchanged file, and the report of
records skipped under ``--on-error skip``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from hanlm.errors import HanlmError, Skipped

logger = logging.getLogger(__name__)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        with open(file, "rb") as f:
            os.fsync(f.fileno())
    fsync_dir(path)


def _disk_error(path: Path, error: OSError) -> HanlmError:
    full = error.errno in (errno.ENOSPC, errno.EDQUOT)
    if full or (error.errno is None and _disk_full(path.parent, error)):  # numpy's OSError
        return HanlmError("no space left on the device; earlier outputs are intact", path=str(path))
    return HanlmError(f"cannot write: {error.strerror or error}", path=str(path))


def _disk_full(directory: Path, error: Exception) -> bool:
    """Writers that are not Python file objects (safetensors, torch.save) report a full disk as
    their own exception types; recognise it by the message or by the space left."""
    if "No space left" in str(error) or "os error 28" in str(error):
        return True
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1 << 20


def write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _disk_error(path, e) from None


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """One JSON object a line (UTF-8, Hangul unescaped), written atomically."""
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_skipped(skipped: list[Skipped], path: str | Path) -> None:
    """Write the skipped records as JSONL (file, line, reason), atomically, and say so once.

    With nothing skipped, a report an earlier run left at ``path`` is removed, so the file
    always describes the output beside it.
    """
    path = Path(path)
    if not skipped:
        path.unlink(missing_ok=True)
        return
    write_jsonl(path, (s.as_dict() for s in skipped))
    logger.warning("skipped %s bad records (--on-error skip); listed in %s",
                   f"{len(skipped):,}", path)


@contextlib.contextmanager
def directory(final: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that becomes `final` only when the block succeeds."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _disk_error(final, e) from None
    except Exception as e:
        full = not isinstance(e, HanlmError) and _disk_full(tmp, e)
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise _disk_error(final, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
