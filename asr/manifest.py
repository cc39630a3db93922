"""Typed JSONL manifests with NeMo-compatible keys.

One utterance per line: `audio_filepath`, `duration` (seconds), `text`, and
optionally `speaker` and `id`. Relative audio paths resolve against the
manifest's folder, and a path that escapes that folder is rejected.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from asr.errors import AsrError
from asr.fileio import atomic_open


class ManifestError(AsrError):
    """A manifest line that cannot be used; the message names file and line."""


@dataclass(frozen=True)
class Utterance:
    audio_filepath: str
    duration: float
    text: str = ""
    speaker: str | None = None
    id: str | None = None

    @property
    def key(self) -> str:
        """A stable identifier: the explicit id, else the audio file's stem."""
        return self.id or Path(self.audio_filepath).stem

    def to_json(self, root: str | os.PathLike | None = None) -> str:
        record = {k: v for k, v in asdict(self).items() if v is not None}
        if root is not None:
            record["audio_filepath"] = os.path.relpath(self.audio_filepath, root)
        return json.dumps(record, ensure_ascii=False)


def read_manifest(path, root=None, allow_outside_root: bool = False) -> list[Utterance]:
    """Read a JSONL manifest; audio paths come back absolute.

    `root` (default: the manifest's folder) anchors relative paths, and no path,
    relative or absolute, may point outside it unless `allow_outside_root`.
    Raises ManifestError naming the file (and line) for anything it cannot use.
    """
    path = Path(path)
    root = Path(root or path.parent).resolve()
    utterances = []
    try:
        with open(path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                where = f"{path}:{number}"
                text = _decode(line, where)
                if text.strip():
                    utterances.append(_parse(text, root, where, allow_outside_root))
    except OSError as error:
        raise ManifestError(f"{path}: cannot be read ({error.strerror or error})") from None
    return utterances


def write_manifest(utterances, path, relative: bool = True) -> None:
    """Write utterances as JSONL atomically, paths relative to the manifest's folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.parent.resolve() if relative else None
    with atomic_open(path) as out:
        for utterance in utterances:
            out.write(utterance.to_json(root) + "\n")


def _decode(line: bytes, where: str) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ManifestError(f"{where}: not UTF-8 text (byte {error.start + 1} of the line)") from None


def _parse(line: str, root: Path, where: str, allow_outside_root: bool) -> Utterance:
    try:
        record = json.loads(line)
        audio = record["audio_filepath"]
    except (ValueError, RecursionError, KeyError, TypeError) as error:
        # ValueError includes JSONDecodeError and integers over 4300 digits; RecursionError
        # is JSON nested deeper than the parser's stack (e.g. 2,000 brackets).
        raise ManifestError(f"{where}: not a manifest record ({type(error).__name__}: "
                            f"{str(error)[:80]})") from None
    if not isinstance(audio, str) or not audio or "\0" in audio:
        raise ManifestError(f"{where}: not a manifest record (audio_filepath must be a "
                            "non-empty string without NUL)")
    resolved = (root / audio).resolve()
    if not allow_outside_root and not resolved.is_relative_to(root):
        raise ManifestError(f"{where}: audio path {audio!r} escapes the manifest root {root}")
    return Utterance(audio_filepath=str(resolved),
                     duration=_duration(record.get("duration", 0.0), where),
                     text=_string(record.get("text"), "text", where) or "",
                     speaker=_string(record.get("speaker"), "speaker", where),
                     id=_string(record.get("id"), "id", where))


def _duration(value, where: str) -> float:
    """Seconds: a finite number >= 0 (numeric strings too; JSON booleans are not numbers)."""
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise ManifestError(f"{where}: bad field (duration must be a finite number >= 0, "
                            f"got {str(value)[:40]!r})")
    return seconds


def _string(value, name: str, where: str) -> str | None:
    """Text fields: strings, None, or numbers (a speaker id 103 reads as "103")."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ManifestError(f"{where}: bad field ({name} must be a string, got {type(value).__name__})")
