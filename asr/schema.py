"""Frozen dataclasses checked against their type hints, and their YAML form.

`from_dict` builds a dataclass from a nested dict (YAML's), `to_dict` turns one
back; every field is checked against its type hint when a dataclass is made
(`check_fields`, called by `Checked.__post_init__`), so a bad value is reported
with its key path (`train.epochs: expected an integer, got 'abc'`) when a file is
loaded, not when the value is first used. `asr.config` holds the sections.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path

import yaml

from asr.errors import AsrError


class ConfigError(AsrError):
    """A configuration file, override or setting that does not fit the dataclasses."""


class Checked:
    """Base of the config dataclasses: each field is checked against its type hint.

    `renamed_keys` maps a key renamed since files were written with it to its new name.
    """

    renamed_keys: dict = {}

    def __post_init__(self):
        check_fields(self)


def require_counts(config, *names: str) -> None:
    """ConfigError naming the first of `config`'s integer fields `names` that is below 1."""
    for name in names:
        if getattr(config, name) < 1:
            raise ConfigError(f"{name}: {getattr(config, name)} is not a positive count")


def read_yaml(path, what: str = "configuration"):
    """A YAML file's content (safe_load); ConfigError naming the file if it cannot be read."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read {what} (not UTF-8 text)") from None
    except (OSError, yaml.YAMLError, ValueError, RecursionError, OverflowError) as error:
        # PyYAML raises ValueError for impossible dates (2001-13-01), RecursionError for deep
        # nesting and OverflowError for an escape past the last code point ("\UFFFFFFFF").
        raise ConfigError(f"{path}: cannot read {what} ({_one_line(error)})") from None


def apply_override(tree, override: str) -> dict:
    """`tree` with `section.key=value` set; the value is read as YAML (`[1, 2]`, `null`, `true`)."""
    key, separator, text = override.partition("=")
    *sections, leaf = key.strip().split(".")
    if not separator or not all([*sections, leaf]):
        raise ConfigError(f"override {override!r} is not of the form section.key=value")
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(f"override {override!r}: the configuration is not a mapping")
    node = tree
    for section in sections:
        if node.get(section) is None:  # `train:` with nothing under it is an empty section
            node[section] = {}
        node = node[section]
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {_name(section)} is not a section")
    try:
        node[leaf] = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError, OverflowError) as error:
        raise ConfigError(f"override {override!r}: not a YAML value ({_one_line(error)})") from None
    return tree


def to_dict(config) -> dict:
    """Dataclass -> plain dict (tuples become lists) for YAML/JSON."""
    return _plain(dataclasses.asdict(config))


def from_dict(cls, tree, prefix: str = ""):
    """Build dataclass `cls` from a nested dict, checking every value against its type hint.

    Raises ConfigError naming the key path (with `prefix`, e.g. "train.") and the reason.
    """
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'configuration'}: expected a mapping, "
                          f"got {_show(tree)}")
    renamed = getattr(cls, "renamed_keys", {})
    tree = {renamed.get(key, key): value for key, value in tree.items()}
    hints = _type_hints(cls)
    unknown = sorted(map(_name, set(tree) - set(hints)))
    if unknown:
        raise ConfigError(f"{prefix.rstrip('.') or 'configuration'}: unknown key(s) "
                          f"{', '.join(unknown)}; known: {', '.join(hints)}")
    values = {name: from_dict(hints[name], value, f"{prefix}{name}.")
              if dataclasses.is_dataclass(hints[name]) else value for name, value in tree.items()}
    try:
        return cls(**values)
    except ConfigError as error:
        raise ConfigError(f"{prefix}{error}") from None


def choices(cls, name: str) -> tuple:
    """The values a Literal-typed field of dataclass `cls` allows."""
    return typing.get_args(_type_hints(cls)[name])


def check_fields(config) -> None:
    """Check (and convert: lists to tuples, ints to floats) each field of a dataclass against
    its type hint, in place; called by each config's __post_init__."""
    for name, kind in _type_hints(type(config)).items():
        object.__setattr__(config, name, _checked(kind, getattr(config, name), name))


def _checked(kind, value, where: str):
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (arg for arg in args if arg is not type(None)):
            try:
                return _checked(option, value, where)
            except ConfigError as error:
                if not str(error).startswith(f"{where}: "):
                    raise  # the value has the option's shape; one of its items is wrong
    elif origin is typing.Literal:
        if any(type(value) is type(choice) and value == choice for choice in args):
            return value
    elif origin is tuple and isinstance(value, (list, tuple)):
        if args[-1] is Ellipsis:
            return tuple(_checked(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
        if len(value) == len(args):  # a fixed length, e.g. a (low, high) range
            return tuple(_checked(arg, item, f"{where}[{i}]")
                         for i, (arg, item) in enumerate(zip(args, value)))
    elif origin in (Mapping, dict) and isinstance(value, Mapping):
        return {_checked(args[0], key, where): _checked(args[1], item, f"{where}.{_name(key)}")
                for key, item in value.items()}
    elif kind is float and isinstance(value, str):
        with contextlib.suppress(ValueError):
            return _number(float(value), where)  # YAML 1.1 reads `1e-3` as a string
    elif kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an integer beyond float's range
            return _number(float(value), where)
    elif kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif kind is str and isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    elif kind is bool and isinstance(value, bool):
        return value
    elif origin is None and kind not in (int, float, str, bool) and isinstance(value, kind):
        return value  # a nested section
    raise ConfigError(f"{where}: expected {_expected(kind)}, got {_show(value)}")


def _number(value: float, where: str) -> float:
    if math.isnan(value):  # every comparison with it is false: no check or range would hold
        raise ConfigError(f"{where}: expected a number, got nan")
    return value


def _expected(kind) -> str:
    """A type hint in words: `tuple[float, ...] | None` -> "a list of numbers, or null"."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        options = [_expected(arg) for arg in args if arg is not type(None)]
        return " or ".join(dict.fromkeys(options)) + (", or null" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is tuple:
        count = "" if args[-1] is Ellipsis else f"{len(args)} "
        return f"a list of {count}{_PLURALS.get(args[0], 'values')}"
    if origin in (Mapping, dict):
        return f"a mapping of {_PLURALS.get(args[0])} to {_PLURALS.get(args[1])}"
    return _NAMES.get(kind, f"a {getattr(kind, '__name__', kind)}")


_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_PLURALS = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


def _name(key) -> str:
    """A key as written in a message: plain if it is a word, else quoted (it may hold a newline)."""
    return key if isinstance(key, str) and key.isidentifier() else repr(key)


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@functools.cache
def _type_hints(cls) -> dict:
    return {name: kind for name, kind in typing.get_type_hints(cls).items()
            if name in {field.name for field in dataclasses.fields(cls)}}


def _one_line(error: Exception) -> str:
    """YAML errors quote the offending source over several lines; keep problem and position."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or (str(error).splitlines() or [type(error).__name__])[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
