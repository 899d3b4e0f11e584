"""Typed launcher configuration: a recipe YAML of overrides, then command-line overrides, into one dataclass.

    config = parse_config(PretrainConfig, ["--config", "tiny-cpu", "--max-steps", "10"])

`--config` takes a YAML path or the name of a bundled recipe (resources.py). Unknown keys (in the YAML or on the
command line) and ill-typed values are errors that name the field, so a typo never silently falls back to a default.
A config class may list renamed fields (`RENAMED_FIELDS = {"old": "new"}`): the old name is still accepted, in a
recipe and as a flag, with a warning, for one version.
"""

import argparse
import dataclasses
import types
import typing
import warnings
from pathlib import Path
from typing import TypeVar

import yaml
from transformers import HfArgumentParser

from .resources import recipe_path

T = TypeVar("T")


def parse_config(config_class: type[T], argv: list[str] | None = None, defaults: dict | None = None,
                 defaults_from: str = "the defaults") -> T:
    """Dataclass defaults < `defaults` (a launcher's own recipe, e.g. a task's fine-tuning defaults) or, replacing
    them, the `--config` recipe < the command line."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(argv)
    rest = renamed_flags(rest, config_class)
    parser = HfArgumentParser(config_class)
    parser.add_argument("--config", default=None, help="recipe YAML (or a bundled recipe's name) whose fields "
                                                       "override the defaults")
    if known.config is not None:
        parser.set_defaults(**load_recipe(recipe_path(known.config), config_class))
    elif defaults:
        parser.set_defaults(**check_fields(defaults, config_class, defaults_from))
    try:
        # the extra --config argument comes back as a trailing namespace after the dataclass
        config, *_ = parser.parse_args_into_dataclasses(rest, look_for_args_file=False)
    except ValueError as error:  # e.g. an unknown --flag
        parser.error(str(error))
    return config


def raise_problems(kind: str, problems: list[str]) -> None:
    """How every launcher config reports what is wrong with it, from its `__post_init__`: all problems at once, each
    naming its field, as one SystemExit (a command line or a recipe gets a message, not a traceback)."""
    if problems:
        raise SystemExit(f"Invalid {kind} config:\n  - " + "\n  - ".join(problems))


def given_fields(config_class: type, argv: list[str]) -> dict:
    """Only the fields `argv` sets, typed as the command line types them: for a launcher that forwards a user's
    flags into configs it builds itself (a flag equal to a default still counts: it was asked for)."""
    parser = HfArgumentParser(config_class)
    for action in parser._actions:
        action.default, action.required = argparse.SUPPRESS, False
    return vars(parser.parse_args(renamed_flags(list(argv), config_class)))


def load_recipe(path: Path, config_class: type) -> dict:
    """The recipe's fields, checked against `config_class`: every key a field, every value of the field's type."""
    if not path.is_file():
        raise SystemExit(f"Recipe {path} does not exist: pass --config with the path of a YAML file.")
    recipe = yaml.safe_load(path.read_text()) or {}
    if not isinstance(recipe, dict):
        raise SystemExit(f"Recipe {path} must be a YAML mapping of field: value, got {type(recipe).__name__}.")
    return check_fields(recipe, config_class, f"Recipe {path}")


def warn_renamed(old: str, new: str, where: str = "") -> None:
    warnings.warn(f"{where}{old} is now called {new}; the old name still works in this version but will be removed: "
                  f"use {new}.", FutureWarning, stacklevel=3)


def renamed_flags(argv: list[str], config_class: type) -> list[str]:
    """`argv` with each renamed field's old flag (--old_name, --old-name, --old-name=value) given its new name."""
    renamed = {}
    for old, new in getattr(config_class, "RENAMED_FIELDS", {}).items():
        renamed[f"--{old}"] = renamed[f"--{old.replace('_', '-')}"] = f"--{new.replace('_', '-')}"
    result = []
    for argument in argv:
        flag, equals, value = argument.partition("=")
        if flag in renamed:
            warn_renamed(flag, renamed[flag])
            argument = renamed[flag] + equals + value
        result.append(argument)
    return result


def check_fields(values: dict, config_class: type, where: str) -> dict:
    values = dict(values)
    for old, new in getattr(config_class, "RENAMED_FIELDS", {}).items():
        if old in values:
            warn_renamed(f"field {old!r}", f"{new!r}", f"{where}: ")
            values.setdefault(new, values.pop(old))
    fields = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise SystemExit(f"{where} has unknown field(s) {unknown}; {config_class.__name__} accepts {sorted(fields)}.")
    hints = typing.get_type_hints(config_class)
    checked = {}
    for name, value in values.items():
        if hints[name] is float and isinstance(value, str) and _is_number(value):
            value = float(value)  # YAML 1.1 reads 5e-4 (no dot) as a string
        if not matches(value, hints[name]):
            raise SystemExit(f"{where}: field {name!r} must be {type_name(hints[name])}, got {value!r}.")
        checked[name] = value
    return checked


def matches(value, hint) -> bool:
    """Whether a YAML value fits a field's type hint (int, float, str, bool, X | None, list[X]); other hints are
    left to the command-line parser."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, member) for member in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (member,) = typing.get_args(hint) or (typing.Any,)
        return isinstance(value, list) and all(matches(item, member) for item in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # a YAML int is a fine float; a YAML bool is not a number
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def type_name(hint) -> str:
    """`str | None` -> "str or None", `list[str]` -> "a list of str"."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(type_name(member) for member in typing.get_args(hint))
    if hint is type(None):
        return "None"
    if typing.get_origin(hint) is list:
        return f"a list of {' or '.join(type_name(m) for m in typing.get_args(hint)) or 'values'}"
    return getattr(hint, "__name__", str(hint))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
