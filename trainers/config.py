"""Typed launcher configuration: a recipe YAML of overrides, then command-line overrides, into one dataclass.

    config = parse_config(QuickstartConfig)        # --config recipe.yaml --some_field value ...

Unknown keys (in the YAML or on the command line) and ill-typed values are errors that name the field,
so a typo never silently falls back to a default.
"""

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import TypeVar

import yaml
from transformers import HfArgumentParser

T = TypeVar("T")


def parse_config(config_class: type[T], argv: list[str] | None = None) -> T:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path, default=None)
    known, rest = pre.parse_known_args(argv)
    parser = HfArgumentParser(config_class)
    parser.add_argument("--config", type=Path, default=None, help="recipe YAML whose fields override the defaults")
    if known.config is not None:
        parser.set_defaults(**load_recipe(known.config, config_class))
    try:
        # the extra --config argument comes back as a trailing namespace after the dataclass
        config, *_ = parser.parse_args_into_dataclasses(rest, look_for_args_file=False)
    except ValueError as error:  # e.g. an unknown --flag
        parser.error(str(error))
    return config


def load_recipe(path: Path, config_class: type) -> dict:
    if not path.is_file():
        raise SystemExit(f"Recipe {path} does not exist: pass --config with the path of a YAML file.")
    recipe = yaml.safe_load(path.read_text()) or {}
    if not isinstance(recipe, dict):
        raise SystemExit(f"Recipe {path} must be a YAML mapping of field: value, got {type(recipe).__name__}.")
    fields = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(recipe) - fields)
    if unknown:
        raise SystemExit(
            f"Recipe {path} has unknown field(s) {unknown}; {config_class.__name__} accepts {sorted(fields)}."
        )
    types = typing.get_type_hints(config_class)
    for name, value in recipe.items():
        expected = SIMPLE_TYPES.get(types[name])
        wrong_type = expected is not None and not isinstance(value, expected)
        if wrong_type or (isinstance(value, bool) and types[name] is not bool):
            raise SystemExit(
                f"Recipe {path}: field {name!r} must be {types[name].__name__}, got {value!r}."
            )
    return recipe


# a YAML int is a fine float; a YAML bool is not an int
SIMPLE_TYPES = {int: int, float: (int, float), str: str, bool: bool}
