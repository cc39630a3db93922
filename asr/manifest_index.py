"""Manifests of any length, read one line at a time.

`ManifestIndex` scans a JSONL manifest once and keeps only what a planner
needs: each line's byte offset and the utterance's duration, 12 bytes a line
(12 MB for a million utterances). Any utterance is then parsed on demand by
seeking to its line, with the same checks as `asr.manifest.read_manifest`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from asr.manifest import Utterance, _decode, _duration, _parse

_DURATION = re.compile(rb'"duration"\s*:\s*([^,}\s]+)')


class ManifestIndex:
    """Byte offsets (n,) int64 and durations (n,) float32 of a JSONL manifest's utterances.

    A line without a `duration` key gets 0.0, as `read_manifest` gives it.
    """

    def __init__(self, path, root=None, allow_outside_root: bool = False):
        self.path = Path(path)
        self.root = Path(root or self.path.parent).resolve()
        self.allow_outside_root = allow_outside_root
        offsets, durations = [], []
        position = 0
        with open(self.path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    durations.append(_duration_of(line, f"{self.path}:{number}"))
                    offsets.append(position)
                position += len(line)
        self.offsets = np.asarray(offsets, np.int64)
        self.durations = np.asarray(durations, np.float32)

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, position: int) -> Utterance:
        return next(self.read(position, position + 1))

    def read(self, start: int = 0, stop: int | None = None):
        """Yield the utterances at positions [start, stop), reading only their lines."""
        stop = len(self) if stop is None else min(stop, len(self))
        if start < stop:
            yield from read_records(self.path, int(self.offsets[start]), stop - start, self.root,
                                    self.allow_outside_root, first=start)


def _duration_of(line: bytes, where: str) -> float:
    """The line's duration without parsing the rest of it, checked as `read_manifest` checks it."""
    match = _DURATION.search(line)
    if not match:
        return 0.0
    try:
        value = json.loads(match[1])  # a number, or a numeric string ("1.5")
    except ValueError:
        value = match[1].decode(errors="replace")
    return _duration(value, where)


def read_records(path, offset: int, count: int, root, allow_outside_root: bool = False,
                 first: int = 0):
    """Yield `count` utterances from the manifest line starting at byte `offset`.

    `first` is that record's position, for error messages.
    """
    with open(path, "rb") as lines:
        lines.seek(offset)
        for position in range(first, first + count):
            line = lines.readline()
            while line and not line.strip():  # blank lines between records carry no position
                line = lines.readline()
            if not line:
                return
            where = f"{path}: record {position + 1}"
            yield _parse(_decode(line, where), Path(root), where, allow_outside_root)
