"""What `asr transcribe` was pointed at -> the audio files to transcribe.

Inputs may be files, folders (searched recursively; audio is recognised by its
content, headerless `.raw`/`.pcm` by extension), glob patterns the shell did
not expand, JSONL manifests (`.jsonl`/`.json`), CSV manifests with an
`audio_filepath` or `path` column, and `-` for a list of paths on stdin.
A path that does not exist, or a pattern that matches nothing, is kept, so it
is reported as a failure rather than dropped.
"""

from __future__ import annotations

import csv
import glob
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from asr import audio
from asr.manifest import ManifestError, read_manifest

JSONL_SUFFIXES = (".jsonl", ".json")
CSV_SUFFIXES = (".csv",)
CSV_COLUMNS = ("audio_filepath", "path")
STDIN = "-"


def expand_inputs(inputs: Iterable, stdin=None) -> list[str]:
    """Audio paths in input order, each file once. `stdin` (default sys.stdin) serves `-`."""
    paths, seen = [], set()
    for path in _expand(inputs, sys.stdin if stdin is None else stdin):
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            paths.append(path)
    return paths


def _expand(inputs: Iterable, stdin) -> Iterable[str]:
    for item in map(os.fspath, inputs):
        path = Path(item)
        if item == STDIN:
            yield from _expand((line.strip() for line in stdin if line.strip()), stdin=())
        elif path.is_dir():
            yield from find_audio(path)
        elif path.is_file() and path.suffix.lower() in JSONL_SUFFIXES:
            yield from (u.audio_filepath for u in read_manifest(path))
        elif path.is_file() and path.suffix.lower() in CSV_SUFFIXES:
            yield from read_csv_manifest(path)
        elif not path.exists() and glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            yield from _expand(matches, stdin) if matches else [item]
        else:
            yield item


def find_audio(folder: Path) -> list[str]:
    """Audio files below `folder`, sorted; symbolic links to folders are not followed.

    A file counts when its name has an audio extension (whether or not it can be
    read: a broken one is then reported, not skipped), when libsndfile recognises
    its content, or when it cannot be opened to find out (it is reported too).
    """
    found = []
    for parent, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            if name.lower().endswith(audio.AUDIO_EXTENSIONS) or _may_be_audio(path):
                found.append(path)
    return sorted(found)


def _may_be_audio(path: str) -> bool:
    try:
        return audio.is_audio(path)
    except OSError:
        return True


def read_csv_manifest(path) -> list[str]:
    """Audio paths from a CSV with a header naming `audio_filepath` or `path`.

    Relative paths resolve against the CSV's folder, which they may not escape
    (as in JSONL manifests).
    """
    path = Path(path)
    try:
        return _csv_paths(path)
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path}: not UTF-8 text (byte {error.start + 1})") from None
    except (OSError, csv.Error) as error:
        raise ManifestError(f"{path}: cannot be read ({getattr(error, 'strerror', None) or error})") from None


def _csv_paths(path: Path) -> list[str]:
    root = path.parent.resolve()
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        column = next((c for c in CSV_COLUMNS if c in (reader.fieldnames or ())), None)
        if column is None:
            raise ManifestError(f"{path}: CSV header has no {' or '.join(CSV_COLUMNS)} column")
        paths = []
        for number, row in enumerate(reader, 2):
            value = (row.get(column) or "").strip()
            if not value:
                raise ManifestError(f"{path}:{number}: empty {column}")
            resolved = (root / value).resolve()
            if not resolved.is_relative_to(root):
                raise ManifestError(f"{path}:{number}: audio path {value!r} escapes the manifest root {root}")
            paths.append(str(resolved))
    return paths
