"""Typed configuration: dataclasses <-> YAML <-> command-line flags.

Every stage takes one dataclass. Its fields (nested dataclasses included, addressed as
``optim.lr``) are settable three ways, later winning: the defaults in the class, a YAML file
(``--config run.yaml``), and flags (``--optim.lr 3e-4``; ``--vocab-size``, with ``--vocab_size``
accepted too). Unknown keys are errors that suggest the closest known key. No global state: a
config is a value passed down.

Hand-written rather than jsonargparse (litgpt's choice): the generation below is small, and what
it adds (bounds named by key, close-key suggestions, flattened shared options) would still be
hand-written on top of such a library, which would bring its own dependency and flag conventions.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from hanlm import atomic
from hanlm.errors import HanlmError

T = TypeVar("T")


def opt(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    positional: bool = False,
    min: float | None = None,
    exclusive_min: bool = False,
    factory: Any = None,
    flatten: bool = False,
) -> Any:
    """A dataclass field with CLI metadata.

    ``positional`` makes it a positional argument (a list type takes one or more values).
    ``min`` bounds numbers from below (``exclusive_min`` for "> min", e.g. a learning rate).
    ``flatten`` (for a nested dataclass shared by several verbs) exposes its fields without a
    prefix, so ``--text-column`` rather than ``--corpus.text-column``.
    """
    metadata = {
        "help": help,
        "positional": positional,
        "min": min,
        "exclusive_min": exclusive_min,
        "flatten": flatten,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _leaf_fields(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field, Any]]:
    """All settable fields, nested dataclasses flattened to dotted names."""
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.extend(_leaf_fields(tp, _child_prefix(prefix, f)))
        else:
            out.append((prefix + f.name, f, tp))
    return out


def _child_prefix(prefix: str, f: dataclasses.Field) -> str:
    return prefix if f.metadata.get("flatten") else f"{prefix}{f.name}."


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML or CLI value to the field's declared type, or raise a HanlmError."""
    inner, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise HanlmError(f"config key '{key}' may not be empty")
    origin = get_origin(inner)
    try:
        if origin is Literal:
            choices = get_args(inner)
            if value not in choices:
                raise HanlmError(
                    f"config key '{key}': {value!r} is not one of {', '.join(map(str, choices))}"
                )
            return value
        if origin in (list, tuple):
            (item,) = get_args(inner)[:1]
            items = value if isinstance(value, list | tuple) else [value]
            return [coerce(v, item, key) for v in items]
        if origin is dict:
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
        if inner is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if inner is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if inner is float:
            return float(value)
        if inner is str:
            return str(value)
    except (TypeError, ValueError):
        raise HanlmError(
            f"config key '{key}': {value!r} is not a valid {getattr(inner, '__name__', inner)}"
        ) from None
    return value


def _check_bounds(key: str, field: dataclasses.Field, value: Any) -> None:
    lo = field.metadata.get("min")
    if lo is None or value is None:
        return
    values = value if isinstance(value, list) else [value]
    for v in values:
        bad = v <= lo if field.metadata.get("exclusive_min") else v < lo
        if bad:
            op = ">" if field.metadata.get("exclusive_min") else ">="
            raise HanlmError(f"config key '{key}' must be {op} {lo}, got {v}")


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{str(k).replace('-', '_')}"
        if isinstance(v, dict) and v and all(isinstance(x, str) for x in v):
            nested = flatten(v, key + ".")
            out.update(nested)
        else:
            out[key] = v
    return out


def build(cls: type[T], values: dict[str, Any] | None = None, *, source: str = "config") -> T:
    """Instantiate ``cls`` from dotted-key values, checking names, types and bounds."""
    leaves = {name: (f, tp) for name, f, tp in _leaf_fields(cls)}
    values = dict(values or {})
    for key in values:
        if key not in leaves:
            raise HanlmError(f"{source}: unknown key '{key}'{_suggest(key, list(leaves))}")
    missing = []
    for name, (f, tp) in leaves.items():
        if name in values:
            values[name] = coerce(values[name], tp, name)
            _check_bounds(name, f, values[name])
        elif _is_required(f):
            missing.append(f"argument '{name}'" if f.metadata.get("positional") else _flag(name))
    if missing:
        raise HanlmError(f"missing required {', '.join(missing)}")
    return _instantiate(cls, values, "")


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _instantiate(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _instantiate(tp, values, _child_prefix(prefix, f))
        elif prefix + f.name in values:
            kwargs[f.name] = values[prefix + f.name]
    return cls(**kwargs)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HanlmError("config file not found", path=str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise HanlmError(
            f"invalid YAML: {getattr(e, 'problem', e)}", path=str(path), line=line
        ) from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise HanlmError("a config file must hold a mapping of keys to values", path=str(path))
    return flatten(tree)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested dict of the config, in the same shape ``--config`` reads back."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            child = to_dict(value)
            if f.metadata.get("flatten"):
                out.update(child)
            else:
                out[f.name] = child
        else:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def save(cfg: Any, path: str | Path) -> None:
    """Write the fully resolved config as YAML (readable back with ``--config``)."""
    atomic.write_text(path, yaml.safe_dump(to_dict(cfg), allow_unicode=True, sort_keys=False))


def fingerprint(obj: Any) -> str:
    import hashlib

    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# ---------------------------------------------------------------- argparse generation


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, require: bool = False) -> None:
    """One flag per leaf field (dotted for nested ones), positional where declared.

    Defaults are SUPPRESSed so that only what the user typed overrides the YAML file. Fields
    without a default are listed under "required arguments"; ``require`` makes argparse demand
    them too (only right when no ``--config`` file can supply them), so that one error names
    every missing one. The usage line puts the positional arguments first: a list option before
    them would take them as its values.
    """
    parser.add_argument("--config", metavar="YAML", help="read settings from a YAML file first")
    required = parser.add_argument_group("required arguments")
    positionals: list[str] = []
    required_flags: list[str] = []
    has_lists = False
    for name, f, tp in _leaf_fields(cls):
        inner, _ = _unwrap_optional(tp)
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if default is not None and default != []:
            help_text += f" (default: {default})"
        help_text = escape(help_text)
        is_list = get_origin(inner) in (list, tuple)
        if f.metadata.get("positional"):
            parser.add_argument(
                name, nargs="+" if is_list else None, help=help_text, default=argparse.SUPPRESS
            )
            positionals.append(f"{name} [{name} ...]" if is_list else name)
            continue
        flag = _flag(name)
        kwargs: dict[str, Any] = {"dest": name, "help": help_text, "default": argparse.SUPPRESS}
        if inner is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif is_list:
            # Repeatable too (--exclude-ids a --exclude-ids b): values accumulate.
            kwargs["action"] = "extend"
            kwargs["nargs"] = "+"
            has_lists = True
        if get_origin(inner) is Literal:
            kwargs["choices"] = list(get_args(inner))
            kwargs["metavar"] = "{" + ",".join(map(str, get_args(inner))) + "}"
        if _is_required(f):
            required_flags.append(f"{flag} {kwargs.get('metavar') or name.upper()}")
            required.add_argument(flag, required=require, **kwargs)
        else:
            parser.add_argument(flag, **kwargs)
    parser.usage = " ".join(["%(prog)s", *positionals, *required_flags, "[options]"])
    if has_lists:
        parser.epilog = "Options shown with '...' take one or more values, and may be repeated" + (
            ": give the positional arguments before them, or end their values with --."
            if positionals else "."
        )
    # "required arguments" right after the positional ones, before the long list of options
    parser._action_groups.remove(required)
    parser._action_groups.insert(1, required)


def escape(text: str) -> str:
    """Help text as argparse expects it: it %-formats help strings (for %(default)s)."""
    return text.replace("%", "%%")


def from_args(cls: type[T], args: argparse.Namespace) -> T:
    values: dict[str, Any] = {}
    config_path = getattr(args, "config", None)
    if config_path:
        values.update(read_yaml(config_path))
    for key, value in vars(args).items():
        if key in ("config", "verb", "handler", "subverb"):
            continue
        values[key] = value
    return build(cls, values, source=config_path or "config")
