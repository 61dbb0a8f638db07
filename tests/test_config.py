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
