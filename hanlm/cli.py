"""The `hanlm` command: a table of verbs, each a config dataclass and a function.

Arguments are generated from the config dataclass, so a verb's flags, its YAML keys and its
Python API are the same names. Parsing imports only the verb's config module, which imports
neither torch nor transformers, and the function's module is imported only to run: `--help` of
any verb is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from dataclasses import dataclass

from hanlm import __version__, config
from hanlm.errors import HanlmError


@dataclass(frozen=True)
class Verb:
    """A verb's config class and function, each as "module:name". The config's module must not
    import torch (or anything slow): it is imported to parse the command line, `--help` included;
    the function's module only to run."""

    config: str
    run: str
    help: str


VERBS: dict[str, Verb] = {
    "tokenizer train": Verb(
        config="hanlm.tokenizer:TokenizerTrainConfig",
        run="hanlm.tokenizer:train_tokenizer",
        help="train a WordPiece vocabulary on a Korean corpus",
    ),
    "data build": Verb(
        config="hanlm.data.build:DataBuildConfig",
        run="hanlm.data.build:build_dataset",
        help="documents -> NSP pairs or packed sequences in memory-mapped shards",
    ),
    "pretrain": Verb(
        config="hanlm.train.config:PretrainConfig",
        run="hanlm.train.pretrain:pretrain",
        help="pretrain a BERT (MLM + NSP), an MLM-only BERT or an ELECTRA on built shards",
    ),
    "export": Verb(
        config="hanlm.export.config:ExportConfig",
        run="hanlm.export.model:export_model",
        help="write a checkpoint as a Hugging Face model directory with a model card",
    ),
    "fill-mask": Verb(
        config="hanlm.infer:FillMaskConfig",
        run="hanlm.infer:fill_mask_cli",
        help="top-k predictions for [MASK] in a sentence",
    ),
    "demo": Verb(
        config="hanlm.demo:DemoConfig",
        run="hanlm.demo:run_demo",
        help="tokenizer -> data -> pretrain -> export -> fill-mask on the embedded corpus",
    ),
    "finetune": Verb(
        config="hanlm.tasks.config:FinetuneConfig",
        run="hanlm.tasks.run:finetune",
        help="fine-tune a BERT, ELECTRA or RoBERTa on a task",
    ),
    "evaluate": Verb(
        config="hanlm.tasks.config:EvaluateConfig",
        run="hanlm.tasks.run:evaluate",
        help="score a fine-tuned model on a task's data with the official metric",
    ),
    "predict": Verb(
        config="hanlm.tasks.config:PredictConfig",
        run="hanlm.tasks.run:predict",
        help="write predictions mapped back to the input as JSONL",
    ),
    "study": Verb(
        config="hanlm.study.config:StudyConfig",
        run="hanlm.study.run:run_study",
        help="domain study: review vs general pretraining (per objective), fine-tuned on "
        "NSMC/KLUE-NLI/KLUE-NER, with a report",
    ),
    "benchmark": Verb(
        config="hanlm.benchmark.config:BenchmarkConfig",
        run="hanlm.benchmark.run:run_benchmark",
        help="fine-tune and score models on every Korean task whose data is found: one table, "
        "mean ± std over seeds",
    ),
}


def load(ref: str):
    """The object a "module:name" reference names, importing its module."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


# The only verbs that go on the network, and only with this option (a config field): every
# other command runs with the Hugging Face libraries offline (see `_stay_offline`).
NETWORK_OPTIONS: dict[str, str] = {"export": "push_to_hub", "finetune": "allow_download",
                                   "evaluate": "allow_download", "predict": "allow_download"}


def _parser() -> tuple[
    argparse.ArgumentParser, dict[str, argparse.ArgumentParser], dict[str, argparse.ArgumentParser]
]:
    """The top-level parser, the parser of each group verb (`tokenizer`) and of each verb."""
    parser = argparse.ArgumentParser(
        prog="hanlm", description="Raw Korean text to a trained, evaluated, shareable Korean BERT."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    top = parser.add_subparsers(dest="verb", metavar="VERB")
    groups: dict[str, argparse.ArgumentParser] = {}
    group_verbs: dict[str, argparse._SubParsersAction] = {}
    leaves: dict[str, argparse.ArgumentParser] = {}
    for name, verb in VERBS.items():
        words = name.split()
        help_text = config.escape(verb.help)
        if len(words) == 2:
            if words[0] not in groups:
                groups[words[0]] = top.add_parser(words[0], help=f"{words[0]} commands")
                group_verbs[words[0]] = groups[words[0]].add_subparsers(
                    dest="subverb", metavar="SUBVERB"
                )
            sub = group_verbs[words[0]].add_parser(words[1], help=help_text, description=verb.help)
        else:
            sub = top.add_parser(name, help=help_text, description=verb.help)
        sub.set_defaults(handler=name)
        leaves[name] = sub
    return parser, groups, leaves


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, groups, leaves = _parser()
    # Generating every verb's flags would import every config module; find the verb first.
    verb_name = _find_verb(argv)
    _stay_offline(verb_name, argv)
    config_class = None
    if verb_name is not None:
        config_class = load(VERBS[verb_name].config)
        leaf = leaves[verb_name]
        config.add_arguments(leaf, config_class, require=not _gives_config_file(argv))
        argv = _dashed(argv, leaf)
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:  # no verb, or a group verb alone
        groups.get(args.verb, parser).print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    del args.verbose
    try:
        cfg = config.from_args(config_class, args)
        result = load(VERBS[args.handler].run)(cfg)
    except HanlmError as e:
        print(f"hanlm {args.handler}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hanlm {args.handler}: interrupted", file=sys.stderr)
        return 130
    finally:
        _leave_process_group()
    return int(result) if isinstance(result, int) else 0


def _leave_process_group() -> None:
    """Under torchrun, close the process group before the interpreter exits: a gloo group left
    open to exit-time teardown can abort a process ("terminate called without an active
    exception") after its work is done, failing the whole launch."""
    dist = sys.modules.get("torch.distributed")  # imported only by a verb that trains
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _dashed(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """`--vocab_size` as `--vocab-size` (also abbreviated, with `=VALUE`, `--no-` forms), for the
    options `parser` knows: underscores are accepted but the help lists the dashed flags only."""
    known = [s for action in parser._actions for s in action.option_strings]
    out = []
    for i, arg in enumerate(argv):
        if arg == "--":  # the rest are values
            return out + argv[i:]
        name, eq, value = arg.partition("=")
        if name.startswith("--") and "_" in name:
            dashed = "--" + name[2:].replace("_", "-")
            if any(option.startswith(dashed) for option in known):
                arg = dashed + eq + value
        out.append(arg)
    return out


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


def _peek(argv: list[str], *options: str) -> argparse.Namespace | None:
    """--config and `options` as the verb's parser will read them (spellings, abbreviations),
    before that parser exists; None when they cannot be read (the verb's parser says why)."""
    parser = _QuietParser(add_help=False)
    for option in ("config", *options):
        parser.add_argument(f"--{option.replace('_', '-')}", dest=option)
    try:
        known, _ = parser.parse_known_args(_dashed(argv, parser))
    except _NotParsed:
        return None
    return known


def _gives_config_file(argv: list[str]) -> bool:
    """Whether --config is given: its file may then supply the required settings."""
    known = _peek(argv)
    return known is not None and known.config is not None


def _asks_for_network(verb_name: str | None, argv: list[str]) -> bool:
    """Whether the network option of `verb_name` is given, as a flag or in the --config YAML."""
    option = NETWORK_OPTIONS.get(verb_name or "")
    known = _peek(argv, option) if option is not None else None
    if known is None:
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


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    sys.exit(main())
