"""Write transcripts to disk: one `.txt` per input file plus JSONL summaries.

Every file is written to a temporary name and renamed into place, so an
interrupted run never leaves a half-written output behind.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

TRANSCRIPTS = "transcripts.jsonl"
FAILURES = "failures.jsonl"


def write_transcripts(results: Iterable, output_dir, root=None, errors=None) -> tuple[int, int]:
    """Write each `Transcript`; failures go to `failures.jsonl` and a line on `errors`.

    Text files mirror the inputs' layout below `root` (default: each file's own
    folder is dropped and only its name is kept). Returns (done, failed) counts.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    records, failures = [], []
    for result in results:
        if result.ok:
            relative = _relative(result.path, root)
            write_atomically(output_dir / relative.with_suffix(".txt"), result.text + "\n")
            records.append({"audio_filepath": result.path, "id": Path(result.path).stem,
                            "text": result.text, "duration": result.duration})
        else:
            print(f"asr: error: {result.error}", file=errors or sys.stderr)
            failures.append({"audio_filepath": result.path, "error": result.error})
    write_atomically(output_dir / TRANSCRIPTS, "".join(json.dumps(r) + "\n" for r in records))
    write_atomically(output_dir / FAILURES, "".join(json.dumps(f) + "\n" for f in failures))
    return len(records), len(failures)


def _relative(path: str, root) -> Path:
    """`path` below `root` when it is inside it, else just the file name."""
    if root:
        relative = Path(os.path.relpath(path, root))
        if not relative.parts or relative.parts[0] != "..":
            return relative
    return Path(Path(path).name)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
