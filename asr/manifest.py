"""Typed JSONL manifests with NeMo-compatible keys.

One utterance per line: `audio_filepath`, `duration` (seconds), `text`, and
optionally `speaker` and `id`. Relative audio paths resolve against the
manifest's folder, and a path that escapes that folder is rejected.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from asr.errors import AsrError


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
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise ManifestError(f"{where}: not UTF-8 text (byte {error.start + 1} of the line)") from None
                if text.strip():
                    utterances.append(_parse(text, root, where, allow_outside_root))
    except OSError as error:
        raise ManifestError(f"{path}: cannot be read ({error.strerror or error})") from None
    return utterances


def write_manifest(utterances, path, relative: bool = True) -> None:
    """Write utterances as JSONL atomically, paths relative to the manifest's folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    root = path.parent.resolve() if relative else None
    with open(temporary, "w", encoding="utf-8") as out:
        for utterance in utterances:
            out.write(utterance.to_json(root) + "\n")
    os.replace(temporary, path)


def _parse(line: str, root: Path, where: str, allow_outside_root: bool) -> Utterance:
    try:
        record = json.loads(line)
        audio = record["audio_filepath"]
        if not isinstance(audio, str) or not audio:
            raise TypeError("audio_filepath must be a non-empty string")
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ManifestError(f"{where}: not a manifest record ({error})") from None
    resolved = (root / audio).resolve()
    if not allow_outside_root and not resolved.is_relative_to(root):
        raise ManifestError(f"{where}: audio path {audio!r} escapes the manifest root {root}")
    try:
        return Utterance(
            audio_filepath=str(resolved),
            duration=float(record.get("duration", 0.0)),
            text=str(record.get("text", "")),
            speaker=record.get("speaker"),
            id=record.get("id"),
        )
    except (TypeError, ValueError) as error:
        raise ManifestError(f"{where}: bad field ({error})") from None
