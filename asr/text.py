"""Text normalisation and the character vocabulary (CTC blank = index 0)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

BLANK = "<blank>"
DEFAULT_CHARACTERS = " '" + "abcdefghijklmnopqrstuvwxyz"

_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
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
        text = re.sub(r"\d", lambda match: f" {_DIGIT_WORDS[int(match.group())]} ", text)
    text = _DROPPED.sub(" ", text)
    text = " ".join(word.strip("'") for word in text.split())
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True)
class Vocabulary:
    """Characters the model emits; index 0 is the CTC blank, characters follow from 1."""

    characters: str = DEFAULT_CHARACTERS

    def __post_init__(self):
        if len(set(self.characters)) != len(self.characters):
            raise ValueError(f"vocabulary has repeated characters: {self.characters!r}")

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
