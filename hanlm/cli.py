"""The `hanlm` command: a table of verbs, each a config dataclass and a function.

Arguments are generated from the config dataclass, so a verb's flags, its YAML keys and its
Python API are the same names. Modules are imported only when their verb runs, which keeps
`hanlm --help` instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from hanlm import config
from hanlm.errors import HanlmError


@dataclass(frozen=True)
class Verb:
    module: str
    config_class: str
    function: str
    help: str


VERBS: dict[str, Verb] = {
    "tokenizer train": Verb(
        "hanlm.tokenizer",
        "TokenizerTrainConfig",
        "train_tokenizer",
        "train a WordPiece vocabulary on a Korean corpus",
    ),
    "data build": Verb(
        "hanlm.data.build",
        "DataBuildConfig",
        "build_dataset",
        "documents -> NSP segment pairs in memory-mapped shards",
    ),
    "pretrain": Verb(
        "hanlm.train.pretrain",
        "PretrainConfig",
        "pretrain",
        "pretrain a BERT (MLM + NSP) on built shards",
    ),
    "export": Verb(
        "hanlm.export",
        "ExportConfig",
        "export_model",
        "write a checkpoint as a Hugging Face model directory with a model card",
    ),
    "fill-mask": Verb(
        "hanlm.infer",
        "FillMaskConfig",
        "fill_mask_cli",
        "top-k predictions for [MASK] in a sentence",
    ),
    "demo": Verb(
        "hanlm.demo",
        "DemoConfig",
        "run_demo",
        "tokenizer -> data -> pretrain -> export -> fill-mask on the embedded corpus",
    ),
    "finetune": Verb(
        "hanlm.tasks.run",
        "FinetuneConfig",
        "finetune",
        "fine-tune a BERT on a task",
    ),
    "evaluate": Verb(
        "hanlm.tasks.run",
        "EvaluateConfig",
        "evaluate",
        "score a fine-tuned model on a task's data with the official metric",
    ),
    "predict": Verb(
        "hanlm.tasks.run",
        "PredictConfig",
        "predict",
        "write predictions mapped back to the input as JSONL",
    ),
    "study": Verb("hanlm.study.run", "StudyConfig", "run_study", "domain study: review vs general pretraining, fine-tuned on NSMC/KLUE-NLI/KLUE-NER, with a report"),
    "benchmark": Verb("hanlm.benchmark.run", "BenchmarkConfig", "run_benchmark", "fine-tune and score models on every Korean task whose data is found: one table, mean ± std over seeds"),
}


# The only verbs that go on the network, and only with this option (a config field): every
# other command runs with the Hugging Face libraries offline (see `_stay_offline`).
NETWORK_OPTIONS: dict[str, str] = {"export": "push_to_hub"}


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="hanlm", description="Raw Korean text to a trained, evaluated, shareable Korean BERT."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    top = parser.add_subparsers(dest="verb", metavar="VERB")
    groups: dict[str, argparse._SubParsersAction] = {}
    leaves: dict[str, argparse.ArgumentParser] = {}
    for name, verb in VERBS.items():
        words = name.split()
        if len(words) == 2:
            if words[0] not in groups:
                group = top.add_parser(words[0], help=f"{words[0]} commands")
                groups[words[0]] = group.add_subparsers(dest="subverb", metavar="SUBVERB")
            sub = groups[words[0]].add_parser(words[1], help=verb.help, description=verb.help)
        else:
            sub = top.add_parser(name, help=verb.help, description=verb.help)
        sub.set_defaults(handler=name)
        leaves[name] = sub
    return parser, leaves


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, leaves = _parser()
    # Generating every verb's flags would import every module; parse the verb first.
    verb_name = _find_verb(argv)
    _stay_offline(verb_name, argv)
    if verb_name is not None:
        verb = VERBS[verb_name]
        module = importlib.import_module(verb.module)
        config.add_arguments(leaves[verb_name], getattr(module, verb.config_class))
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    del args.verbose
    verb = VERBS[args.handler]
    module = importlib.import_module(verb.module)
    try:
        cfg = config.from_args(getattr(module, verb.config_class), args)
        result = getattr(module, verb.function)(cfg)
    except HanlmError as e:
        print(f"hanlm {args.handler}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hanlm {args.handler}: interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) else 0


def _stay_offline(verb_name: str | None, argv: list[str]) -> None:
    """Set HF_HUB_OFFLINE=1 unless the user set it or this command asks for the network.

    hanlm loads models and tokenizers from local directories only; with the variable set,
    transformers and huggingface_hub do not try the network behind its back either.
    huggingface_hub reads the variable once, when imported, so this runs before the verb's
    module is imported. The variable is the only state it changes.
    """
    if "HF_HUB_OFFLINE" in os.environ or _asks_for_network(verb_name, argv):
        return
    os.environ["HF_HUB_OFFLINE"] = "1"


class _NotParsed(Exception):
    pass


class _QuietParser(argparse.ArgumentParser):
    def error(self, message):  # the real parser reports the error, after this one
        raise _NotParsed(message)


def _asks_for_network(verb_name: str | None, argv: list[str]) -> bool:
    """Whether the network option of `verb_name` is given, as a flag or in the --config YAML,
    read with the spellings and abbreviations the verb's own parser accepts."""
    option = NETWORK_OPTIONS.get(verb_name or "")
    if option is None:
        return False
    parser = _QuietParser(add_help=False)
    parser.add_argument("--config")
    parser.add_argument(f"--{option.replace('_', '-')}", f"--{option}", dest=option)
    try:
        known, _ = parser.parse_known_args(argv)
    except _NotParsed:
        return False
    value = getattr(known, option)
    if value is None and known.config:
        try:
            value = config.read_yaml(known.config).get(option)
        except HanlmError:  # reported when the verb reads it
            return False
    return bool(value)


def _find_verb(argv: list[str]) -> str | None:
    words = [a for a in argv if not a.startswith("-")][:2]
    for n in (2, 1):
        name = " ".join(words[:n])
        if len(words) >= n and name in VERBS:
            return name
    return None


def command_line(fallback: str) -> str:
    """The command as a user would type it again (`hanlm VERB …`) when this process was started
    from the command line (the `hanlm` script, `python -m hanlm` or `python -m hanlm.cli`);
    `fallback` when it was not (a call of the Python API)."""
    entry = Path(sys.argv[0])
    if entry.name in ("hanlm", "__main__.py") or entry.parts[-2:] == ("hanlm", "cli.py"):
        return shlex.join(["hanlm", *sys.argv[1:]])
    return fallback


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    sys.exit(main())
