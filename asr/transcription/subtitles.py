"""SubRip (SRT) and WebVTT subtitles from timed words.

Words are grouped into one-line cues of at most `max_seconds` and
`max_characters` (42 characters is the usual broadcast line limit, 7 s about
the longest a viewer reads one line for); a pause longer than `max_pause`
also starts a new cue, so a cue does not stay on screen through silence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from asr.transcription.timestamps import Word

MAX_SECONDS = 7.0
MAX_CHARACTERS = 42
MAX_PAUSE = 1.5


class Cue(NamedTuple):
    start: float
    end: float
    text: str


def cues(words: Sequence[Word], max_seconds: float = MAX_SECONDS,
         max_characters: int = MAX_CHARACTERS, max_pause: float = MAX_PAUSE) -> list[Cue]:
    """Group consecutive words into cues; a word longer than the limits gets a cue of its own."""
    grouped: list[list[Word]] = []
    for word in words:
        if grouped:
            cue = grouped[-1]
            text = " ".join(w.text for w in cue) + " " + word.text
            if (word.end - cue[0].start <= max_seconds and len(text) <= max_characters
                    and word.start - cue[-1].end <= max_pause):
                cue.append(word)
                continue
        grouped.append([word])
    return [Cue(cue[0].start, cue[-1].end, " ".join(w.text for w in cue)) for cue in grouped]


def to_srt(words: Sequence[Word]) -> str:
    """SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each."""
    return "".join(f"{number}\n{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}\n{cue.text}\n\n"
                   for number, cue in enumerate(_ordered(cues(words)), 1))


def to_vtt(words: Sequence[Word]) -> str:
    """WebVTT: a `WEBVTT` header, then cues timed `HH:MM:SS.mmm --> HH:MM:SS.mmm`."""
    return "WEBVTT\n\n" + "".join(
        f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}\n{cue.text}\n\n"
        for cue in _ordered(cues(words)))


def _ordered(found: list[Cue]) -> list[Cue]:
    """Cues that neither overlap nor end before they start once rounded to milliseconds."""
    ordered, previous_end = [], 0
    for cue in found:
        start = max(round(cue.start * 1000), previous_end)
        end = max(round(cue.end * 1000), start + 1)
        ordered.append(Cue(start / 1000, end / 1000, cue.text))
        previous_end = end
    return ordered


def _timestamp(seconds: float, separator: str) -> str:
    milliseconds = round(seconds * 1000)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    seconds, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{milliseconds:03d}"
