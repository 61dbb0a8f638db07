from dataclasses import dataclass
from typing import Literal

import pytest

from hanlm import config
from hanlm.config import opt
from hanlm.errors import HanlmError


@dataclass
class Inner:
    lr: float = opt(1e-3, min=0, exclusive_min=True)
    name: str = opt("x")


@dataclass
class Shared:
    text_column: str = opt("text")


@dataclass
class Outer:
    out: str = opt(help="required")
    batch_size: int = opt(8, min=1)
    mode: Literal["a", "b"] = opt("a")
    tags: list[str] = opt(factory=list)
    flag: bool = opt(False)
    maybe: int | None = opt(None)
    inner: Inner = opt(factory=Inner)
    shared: Shared = opt(factory=Shared, flatten=True)


def test_defaults_and_dotted_overrides():
    cfg = config.build(Outer, {"out": "o", "inner.lr": "0.5", "text_column": "review"})
    assert cfg.inner.lr == 0.5 and cfg.shared.text_column == "review" and cfg.batch_size == 8


def test_unknown_key_suggests_closest():
    with pytest.raises(HanlmError, match="unknown key 'batch_sise'.*did you mean 'batch_size'"):
        config.build(Outer, {"out": "o", "batch_sise": 3})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("batch_size", 0, "must be >= 1"),
        ("batch_size", -4, "must be >= 1"),
        ("inner.lr", 0, "must be > 0"),
        ("batch_size", "many", "not a valid int"),
        ("mode", "c", "not one of"),
        ("flag", "perhaps", "not a valid bool"),
    ],
)
def test_bad_values_are_named(key, value, message):
    with pytest.raises(HanlmError, match=message):
        config.build(Outer, {"out": "o", key: value})


def test_missing_required():
    with pytest.raises(HanlmError, match="missing required --out"):
        config.build(Outer, {})


@dataclass
class Several:
    corpus: list[str] = opt(help="files", positional=True)
    task: str = opt(help="task name")
    out: str = opt(help="output directory")
    seeds: list[int] = opt(help="seeds", factory=lambda: [1])
    share: float = opt(0.5, "87.4% reference; 100% at most")
    keep_models: bool = opt(False, "keep them")


def test_every_missing_required_setting_in_one_error():
    with pytest.raises(HanlmError, match=r"missing required argument 'corpus', --task, --out$"):
        config.build(Several, {})


def parser_for(cls, *, require=False):
    import argparse

    parser = argparse.ArgumentParser(prog="hanlm x")
    config.add_arguments(parser, cls, require=require)
    return parser


def test_help_with_a_percent_sign():
    assert "87.4% reference; 100% at most (default: 0.5)" in " ".join(
        parser_for(Several).format_help().split())


def test_list_flags_take_several_values_and_repeat():
    args = parser_for(Several).parse_args(["a", "b", "--seeds", "1", "2", "--seeds", "3",
                                           "--task", "t", "--out", "o"])
    cfg = config.from_args(Several, args)
    assert (cfg.corpus, cfg.seeds) == (["a", "b"], [1, 2, 3])


def test_each_flag_listed_once_with_dashes():
    text = parser_for(Several).format_help()
    assert "--keep-models, --no-keep-models" in text and text.count("--keep-models") == 1
    assert "keep_models" not in text and "--batch_size" not in parser_for(Outer).format_help()


def test_required_options_have_their_own_group_and_lead_the_usage():
    text = parser_for(Several).format_help()
    assert text.startswith("usage: hanlm x corpus [corpus ...] --task TASK --out OUT [options]")
    required = text.split("required arguments:")[1].split("options:")[0]
    assert "--task" in required and "--out" in required and "--seeds" not in required
    assert "positional arguments before them, or end their values with --" in text


def test_argparse_names_every_missing_one_when_no_config_file_can(capsys):
    with pytest.raises(SystemExit):
        parser_for(Several, require=True).parse_args([])
    assert "the following arguments are required: corpus, --task, --out" in capsys.readouterr().err
    args = parser_for(Several).parse_args(["a", "--config", "c.yaml"])  # the file may have them
    assert vars(args) == {"corpus": ["a"], "config": "c.yaml"}


def test_yaml_then_cli_round_trip(tmp_path):
    import argparse

    (tmp_path / "c.yaml").write_text("out: from-yaml\nbatch_size: 4\ninner:\n  lr: 0.25\n")
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, Outer)
    args = parser.parse_args(["--config", str(tmp_path / "c.yaml"), "--batch-size", "16", "--flag", "--tags", "a", "--tags", "b"])
    cfg = config.from_args(Outer, args)
    assert (cfg.out, cfg.batch_size, cfg.inner.lr, cfg.flag, cfg.tags) == ("from-yaml", 16, 0.25, True, ["a", "b"])
    config.save(cfg, tmp_path / "saved.yaml")
    again = config.build(Outer, config.read_yaml(tmp_path / "saved.yaml"))
    assert again == cfg


def test_yaml_unknown_key_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("out: x\ninner:\n  lrr: 1\n")
    with pytest.raises(HanlmError, match=r"bad.yaml: unknown key 'inner.lrr' \(did you mean 'inner.lr'"):
        config.build(Outer, config.read_yaml(path), source=str(path))


def test_invalid_yaml_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("out: x\nbatch_size: [1\n")
    with pytest.raises(HanlmError, match="broken.yaml:"):
        config.read_yaml(path)
