"""Argument helpers every `asr` subcommand shares."""

from __future__ import annotations

import argparse
import inspect
import math
from pathlib import Path

from asr.quiet import import_tensorflow_quietly


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default (read from the library), unless it has none."""

    def _get_help_string(self, action):
        if action.default in (None, False, [], argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def count(text: str) -> int:
    """An argparse type for sizes and counts: a whole number >= 1."""
    value = int(text)  # argparse turns a ValueError into "invalid count value: 'x'"
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive count")
    return value


def seconds(text: str) -> float:
    """An argparse type for durations and time limits: a finite number above 0."""
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{value} is not a time above 0 s")
    return value


def fraction(text: str) -> float:
    """An argparse type for shares: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} does not lie in [0, 1]")
    return value


def start_tensorflow(args) -> None:
    """Import TensorFlow before a command needs it, without its start-up lines unless --verbose."""
    if not args.verbose:  # with --verbose, TensorFlow loads on first use, saying all it says
        import_tensorflow_quietly()


def library_default(function, parameter: str):
    """A library function's default for `parameter`: the CLI never types its own copy."""
    return inspect.signature(function).parameters[parameter].default


def add_config_arguments(parser, default=None) -> None:
    """--config YAML and KEY=VALUE overrides (`asr.config.load_config`'s two inputs)."""
    parser.add_argument("--config", type=Path, default=default, required=default is None,
                        help="YAML experiment config")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. train.epochs=5 model.lstm_units=128")
