"""Text normalisation and the character vocabulary (CTC blank = index 0).

`normalize` is the training normaliser. Reports may score with another
(`scoring_normalizer`): none, or OpenAI Whisper's English normaliser, which
makes WER comparable with systems evaluated the Whisper way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from asr.errors import AsrError, UsageError

BLANK = "<blank>"
DEFAULT_CHARACTERS = " '" + "abcdefghijklmnopqrstuvwxyz"

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_DROPPED = re.compile(r"[^a-z' ]+")
_SPACES = re.compile(r"\s+")


def normalize(text: str, spell_digits: bool = True) -> str:
    """Lower-case, strip accents and punctuation, spell digits, collapse spaces.

    The same function runs on training transcripts and before scoring, so the
    model is never asked to produce characters that evaluation would discard.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = text.replace("\u2019", "'").replace("-", " ")
    if spell_digits:
        text = re.sub(r"\d", lambda match: f" {DIGIT_WORDS[int(match.group())]} ", text)
    text = _DROPPED.sub(" ", text)
    text = " ".join(word.strip("'") for word in text.split())
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True)
class ScoringNormalizer:
    """A text normaliser for scoring, with the line a report prints about it."""

    name: str
    description: str
    function: Callable[[str], str]

    def __call__(self, text: str) -> str:
        return self.function(text)


SCORING_NORMALIZERS = ("training", "none", "whisper")


def scoring_normalizer(name: str = "training") -> ScoringNormalizer:
    """"training" (`normalize`, what the model learnt to write), "none" (texts as written,
    split at whitespace) or "whisper" (Whisper's EnglishTextNormalizer, from the
    whisper-normalizer package: `pip install 'asr[whisper]'`)."""
    if name == "training":
        return ScoringNormalizer(name, "training (asr.text.normalize: NFKD accent stripping, lower "
                                 "case, digits spelled as words, punctuation except inner "
                                 "apostrophes removed, whitespace collapsed)", normalize)
    if name == "none":
        return ScoringNormalizer(name, "none (texts scored as written, split at whitespace)", str)
    if name == "whisper":
        try:
            from whisper_normalizer.english import EnglishTextNormalizer
        except ImportError:
            raise UsageError("the whisper normaliser needs the whisper-normalizer package "
                             "(pip install 'asr[whisper]')") from None
        return ScoringNormalizer(name, "whisper (OpenAI Whisper's EnglishTextNormalizer, from "
                                 "whisper-normalizer: spellings Americanised, numbers as digits, "
                                 "fillers removed)", EnglishTextNormalizer())
    raise UsageError(f"unknown normaliser {name!r} (expected {', '.join(SCORING_NORMALIZERS)})")


class VocabularyError(AsrError):
    """Characters that cannot make a vocabulary."""


@dataclass(frozen=True)
class Vocabulary:
    """Characters the model emits; index 0 is the CTC blank, characters follow from 1."""

    characters: str = DEFAULT_CHARACTERS

    def __post_init__(self):
        if len(set(self.characters)) != len(self.characters):
            raise VocabularyError(f"vocabulary has repeated characters: {self.characters!r}")

    @property
    def size(self) -> int:
        """Number of output classes, blank included."""
        return len(self.characters) + 1

    @property
    def tokens(self) -> list[str]:
        return [BLANK, *self.characters]

    def encode(self, text: str) -> list[int]:
        """Map normalised text to label ids (1..size-1); unknown characters raise."""
        index = self._index
        try:
            return [index[ch] for ch in text]
        except KeyError as error:
            raise ValueError(f"character {error.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        """Map label ids back to text; blanks (0) are skipped."""
        return "".join(self.characters[i - 1] for i in ids if i > 0)

    def covers(self, text: str) -> bool:
        return all(ch in self._index for ch in text)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {ch: i + 1 for i, ch in enumerate(self.characters)}
