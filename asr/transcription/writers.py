"""Write transcripts: per-file txt/json/srt/vtt, and the run's JSONL summaries.

Per-file outputs mirror the inputs' layout below their common folder, one file
per input and format (`clip.wav` -> `clip.txt`; inputs that would share a name,
like `clip.wav` and `clip.flac`, keep their extension: `clip.wav.txt`).
`transcripts.jsonl` (format `jsonl`) has one record per transcribed file, and
`failures.jsonl` one per failed file with the reason.

Every file is written atomically (`asr.fileio`), so an output that exists is
complete. Per-file outputs skip their own fsync (8 ms each on a typical disk,
more than the model spends on a short clip); the summaries are written after
one `sync_all`, so a summary never lists an output a power cut could lose. A
process killed outright may leave temporary files behind; they never carry an
output's name, and the next run into the same folder deletes those whose
process is gone. The summaries are rewritten every
`CHECKPOINT_SECONDS` and when the run ends, however it ends, so a killed run
still leaves a recent one.

A rerun skips the files whose outputs all exist (for `jsonl`: whose record the
previous summary holds, which it carries over) unless `overwrite` is set.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from pathlib import Path

from asr.errors import UsageError
from asr.fileio import UNENCODABLE, atomic_path, remove_stale_temporaries, sync_all, write_text
from asr.transcription.subtitles import to_srt, to_vtt

FORMATS = ("txt", "json", "jsonl", "srt", "vtt")
PER_FILE_FORMATS = ("txt", "json", "srt", "vtt")
DEFAULT_FORMATS = ("txt", "jsonl")
TRANSCRIPTS = "transcripts.jsonl"
FAILURES = "failures.jsonl"
CHECKPOINT_SECONDS = 30.0


def parse_formats(spec: str) -> tuple[str, ...]:
    """'txt,json' or 'all' -> output formats; raises UsageError naming an unknown one."""
    names = [name.strip().lower() for name in spec.split(",") if name.strip()]
    if "all" in names:
        return FORMATS
    for name in names or [spec]:
        if name not in FORMATS:
            raise UsageError(f"unknown output format {name!r} (expected {', '.join(FORMATS)} or all)")
    return tuple(dict.fromkeys(names))


def output_stems(paths: list[str]) -> dict[str, Path]:
    """Each input path -> its outputs' path below the output folder, without extension."""
    if not paths:
        return {}
    absolute = {path: os.path.abspath(path) for path in paths}
    root = os.path.commonpath([os.path.dirname(a) for a in absolute.values()])
    relative = {path: Path(os.path.relpath(a, root)) for path, a in absolute.items()}
    counts = Counter(r.with_suffix("") for r in relative.values())
    return {path: r.with_suffix("") if counts[r.with_suffix("")] == 1 else r for path, r in relative.items()}


def render(transcript, format: str) -> str:
    """One successful `Transcript` as the text of a per-file output."""
    if format == "txt":
        return transcript.text + "\n"
    if format == "json":
        record = {**summary_record(transcript), "words": [word._asdict() for word in transcript.words]}
        return json.dumps(record, ensure_ascii=False, indent=2) + "\n"
    if format == "srt":
        return to_srt(transcript.words)
    if format == "vtt":
        return to_vtt(transcript.words)
    raise ValueError(f"{format!r} is not a per-file output format")


def summary_record(transcript) -> dict:
    return {"audio_filepath": transcript.path, "id": Path(transcript.path).stem,
            "text": transcript.text, "duration": transcript.duration}


class TranscriptWriter:
    """Writes one run's outputs. Use it as a context manager so that the
    summaries are written however the run ends; `pending` lists the inputs
    that still need transcribing, `failed` this run's failures. The summaries
    keep earlier runs' rows for files this run is not given, so a run with other
    files loses none of them.
    """

    def __init__(self, output_dir, paths: list[str], formats=DEFAULT_FORMATS, overwrite: bool = False):
        self.output_dir = Path(output_dir)
        self.formats = tuple(formats)
        self.stems = output_stems(paths)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.output_dir)
        previous = _read_records(self.output_dir / TRANSCRIPTS)
        inputs = set(paths)
        self.records = {path: row for path, row in previous.items() if path not in inputs}
        self.failures = {path: row for path, row in _read_records(self.output_dir / FAILURES).items()
                         if path not in inputs}
        self.pending: list[str] = []
        self.failed: set[str] = set()
        for path in paths:
            if not overwrite and self._done(path, previous):
                if path in previous:
                    self.records[path] = previous[path]
            else:
                self.pending.append(path)
        self.skipped = len(paths) - len(self.pending)
        self._checkpointed = time.monotonic()

    def output_path(self, path: str, format: str) -> Path:
        stem = self.stems[path]
        return self.output_dir / stem.with_name(f"{stem.name}.{format}")

    def write(self, transcript) -> None:
        if transcript.ok:
            write_outputs(transcript, self.output_dir / self.stems[transcript.path], self.formats)
        self.record(transcript)

    def record(self, transcript) -> None:
        """Add a transcript to the summaries only (its per-file outputs are written elsewhere)."""
        if transcript.ok:
            self.records[transcript.path] = summary_record(transcript)
        else:
            self.failures[transcript.path] = {"audio_filepath": transcript.path, "error": transcript.error}
            self.failed.add(transcript.path)
        if time.monotonic() - self._checkpointed > CHECKPOINT_SECONDS:
            self.write_summaries()

    def write_summaries(self) -> None:
        sync_all()  # the per-file outputs the summary is about reach the disk first
        if "jsonl" in self.formats:
            write_text(self.output_dir / TRANSCRIPTS, _jsonl(self.records.values()))
        write_text(self.output_dir / FAILURES, _jsonl(self.failures.values()))
        self._checkpointed = time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.write_summaries()

    def _done(self, path: str, previous: dict) -> bool:
        if "jsonl" in self.formats and path not in previous:
            return False
        return all(self.output_path(path, format).is_file()
                   for format in self.formats if format in PER_FILE_FORMATS)


def write_outputs(transcript, stem: Path, formats) -> None:
    """A successful transcript's per-file outputs among `formats`: `stem` + '.txt', '.json', ...

    All of them are rendered and written under temporary names before the first is renamed,
    so a Ctrl-C leaves a file's outputs all there or all absent (but for the microseconds
    between two renames), never a `.txt` without its `.json`.
    """
    with contextlib.ExitStack() as renames:  # renamed into place as the block ends
        for format in (format for format in formats if format in PER_FILE_FORMATS):
            temporary = renames.enter_context(atomic_path(stem.with_name(f"{stem.name}.{format}"),
                                                          sync=False))
            temporary.write_text(render(transcript, format), encoding="utf-8", errors=UNENCODABLE)


def _read_records(path: Path) -> dict[str, dict]:
    """A previous run's summary by audio path; unreadable lines are ignored (the files get redone)."""
    records = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
                records[record["audio_filepath"]] = record
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return records


def _jsonl(records) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
