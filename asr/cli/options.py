"""Argument helpers every `asr` subcommand shares."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default (read from the library), unless it has none."""

    def _get_help_string(self, action):
        if action.default in (None, False, [], argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def library_default(function, parameter: str):
    """A library function's default for `parameter`: the CLI never types its own copy."""
    return inspect.signature(function).parameters[parameter].default


def add_config_arguments(parser, default=None) -> None:
    """--config YAML and KEY=VALUE overrides (`asr.config.load_config`'s two inputs)."""
    parser.add_argument("--config", type=Path, default=default, required=default is None,
                        help="YAML experiment config")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. train.epochs=5 model.lstm_units=128")
