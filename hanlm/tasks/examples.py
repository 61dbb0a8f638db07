"""Reading a task's examples the one way every caller does (`hanlm finetune`, `evaluate`,
`predict`, the study, the benchmark): the task's reader, ids as keys only where a file keeps them
unique, `--split-dev` at run time, `--limit`. Imports no torch."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hanlm.errors import HanlmError
from hanlm.tasks.base import ReadOptions, Task, key_examples
from hanlm.tasks.split import parse_split, split_examples

logger = logging.getLogger(__name__)


def read_examples(task: Task, path: str | Path, read: ReadOptions | None = None) -> list[Any]:
    """Every example of one file; an empty file is an error."""
    examples = task.read(Path(path), read or ReadOptions())
    logger.info("%s: %d examples", path, len(examples))
    if not examples:
        raise HanlmError("no examples read", path=str(path))
    key_examples(examples, path)
    return examples


def load_examples(task: Task, train: str | Path, *, dev: str | Path | None = None,
                  split_dev: str | None = None, limit: int | None = None,
                  read: ReadOptions | None = None, examples: list[Any] | None = None,
                  ) -> tuple[list[Any], list[Any]]:
    """(train, dev) examples as `hanlm finetune` trains and selects on: the training file split
    at run time by `split_dev` (SEED:FRACTION, by article or premise), or the training and dev
    files; the first `limit` of each. `examples`: the training file's, when already read."""
    examples = examples if examples is not None else read_examples(task, train, read)
    if split_dev is not None:
        if dev is not None:
            raise HanlmError("--split-dev splits --train into train and dev; drop --dev")
        seed, fraction = parse_split(split_dev)
        train_ex, dev_ex = split_examples(examples, task.group_of, seed, fraction)
        logger.info("--split-dev %s: %d train / %d held-out examples", split_dev,
                    len(train_ex), len(dev_ex))
    else:
        train_ex, dev_ex = examples, (read_examples(task, dev, read) if dev else [])
    return limited(train_ex, limit), limited(dev_ex, limit)


def held_out_part(task: Task, examples: list[Any], split_dev: str | None,
                  limit: int | None) -> list[Any]:
    """With `split_dev`, the held-out part that finetune did not train on; then `limit`."""
    if split_dev is not None:
        seed, fraction = parse_split(split_dev)
        _, examples = split_examples(examples, task.group_of, seed, fraction)
        logger.info("--split-dev %s: using the %d held-out examples", split_dev, len(examples))
    return limited(examples, limit)


def limited(examples: list[Any], limit: int | None) -> list[Any]:
    return examples if limit is None else examples[:limit]
