"""`DecoderConfig`: which decoder, from command-line style settings, and its YAML form.

The settings behind --decoder, --beam-width, --lm, --alpha, --beta, --hotwords
and --lexicon build an `asr.decoding.decode` decoder; the YAML file is what
`asr tune-lm --output` writes and `--decode-config` reads.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from asr import fileio
from asr.config import Checked, ConfigError, from_dict, read_yaml, to_dict
from asr.decoding.decode import BeamSearchDecoder, GreedyDecoder
from asr.decoding.lm import LanguageModel, known_words, load_language_model
from asr.text import Vocabulary, normalize

DEFAULT_HOTWORD_WEIGHT = 5.0


def parse_hotwords(spec: str, default_weight: float = DEFAULT_HOTWORD_WEIGHT) -> dict[str, float]:
    """'word[:weight],...', as --hotwords takes it -> {normalised word: weight in nats}.

    The default weight is about what an LM charges a word it has never seen, plus a margin.
    """
    hotwords = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        word, _, weight = item.partition(":")
        word = normalize(word)
        if not word or " " in word:
            raise ConfigError(f"hotword {item!r} is not a single word")
        try:
            hotwords[word] = float(weight) if weight else default_weight
        except ValueError:
            raise ConfigError(f"hotword {item!r}: weight {weight!r} is not a number") from None
    return hotwords


@dataclass(frozen=True)
class DecoderConfig(Checked):
    """Settings behind --decoder, --beam-width, --lm, --alpha, --beta, --hotwords and --lexicon."""

    decoder: Literal["greedy", "beam"] = "greedy"
    beam_width: int = BeamSearchDecoder.beam_width
    lm_path: str | None = None
    alpha: float = BeamSearchDecoder.alpha  # LM weight
    beta: float = BeamSearchDecoder.beta  # word insertion bonus
    hotwords: Mapping[str, float] | None = None
    prune_log_prob: float = BeamSearchDecoder.prune_log_prob
    lexicon: bool = False  # spell only the LM's words

    def __post_init__(self):
        super().__post_init__()
        if self.beam_width < 1:
            raise ConfigError(f"beam_width: must be at least 1, got {self.beam_width}")
        weights = {"alpha": self.alpha, "beta": self.beta,
                   **{f"hotwords.{word}": weight for word, weight in (self.hotwords or {}).items()}}
        for name, weight in weights.items():
            if not math.isfinite(weight):  # an infinite weight leaves one term to decide every word
                raise ConfigError(f"{name}: {weight} is not a finite weight")
        if self.decoder == "greedy" and (self.lm_path or self.hotwords):
            raise ConfigError("a language model and hotwords need the beam decoder (--decoder beam)")
        if self.lexicon and not self.lm_path:
            raise ConfigError("a lexicon is the language model's words: it needs an LM (--lm)")

    @functools.cached_property
    def language_model(self) -> LanguageModel | None:
        """The LM at `lm_path`, loaded on first use and kept with this config, so that a
        process decoding many batches (a pipeline's worker) loads it once."""
        return load_language_model(self.lm_path) if self.lm_path else None

    def build(self, vocabulary: Vocabulary) -> GreedyDecoder | BeamSearchDecoder:
        """The decoder, its LM loaded; raises LanguageModelError for an unusable LM file."""
        if self.decoder == "greedy":
            return GreedyDecoder(vocabulary)
        words = known_words(self.language_model) if self.lexicon else None
        return BeamSearchDecoder(vocabulary, self.beam_width, self.language_model, self.alpha, self.beta,
                                 self.hotwords, self.prune_log_prob, words)


def override_decoder_config(config: DecoderConfig, **settings) -> DecoderConfig:
    """`config` with the given fields replaced (None leaves a field alone).

    Choosing the greedy decoder drops the LM, hotwords and lexicon `config` brought, since
    greedy decoding cannot use them; ones given here still raise.
    """
    settings = {name: value for name, value in settings.items() if value is not None}
    if settings.get("decoder") == "greedy":
        config = dataclasses.replace(config, decoder="greedy", lm_path=None, hotwords=None, lexicon=False)
    return dataclasses.replace(config, **settings)


def save_decoder_config(config: DecoderConfig, path, comment: str = "") -> None:
    """Write `config` as YAML; the LM path is stored relative to the file's folder."""
    path = Path(path)
    tree = {name: value for name, value in to_dict(config).items() if value is not None}
    if config.lm_path:
        tree["lm_path"] = os.path.relpath(Path(config.lm_path).resolve(), path.parent.resolve())
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    fileio.write_text(path, header + yaml.safe_dump(tree, sort_keys=False))


def load_decoder_config(path) -> DecoderConfig:
    """Read a decoding config YAML; a relative `lm_path` is relative to the file's folder.

    `hotwords` may be a mapping of words to weights, or a string as --hotwords takes it.
    Raises ConfigError naming the file and the reason.
    """
    path = Path(path)
    tree = read_yaml(path, "decoding config")
    try:
        if isinstance(tree, dict) and isinstance(tree.get("hotwords"), str):
            tree = {**tree, "hotwords": parse_hotwords(tree["hotwords"])}
        config = from_dict(DecoderConfig, tree)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    if not config.lm_path:
        return config
    return dataclasses.replace(config, lm_path=str(path.parent / config.lm_path))
