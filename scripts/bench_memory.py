"""Peak memory (RSS) and real-time factor of `asr transcribe` on one long file.

    python scripts/bench_memory.py --model work/fsdd-run/model/model.keras --minutes 1 60

For each length, synthesises one file in a temporary folder by concatenating
FSDD digit recordings (8 kHz, so the run also resamples) with 0.2-0.8 s pauses
of faint noise, written block by block, then runs `asr transcribe` on it in a
subprocess and reports that process's peak RSS, its wall time and the RTF
(wall time, start-up included, / audio seconds). Peak RSS should not grow with
the file's length. Target: at most 1.5 GB for one hour.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

FSDD_RECORDINGS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd" / "recordings"


def synthesise(path: Path, seconds: float, recordings: Path, seed: int = 0) -> float:
    """Digits and pauses until `seconds`, written at the recordings' rate; returns the length."""
    rng = np.random.default_rng(seed)
    sources = sorted(recordings.glob("*.wav"))
    if not sources:
        raise SystemExit(f"no .wav files in {recordings}")
    rate = soundfile.info(sources[0]).samplerate
    written = 0
    with soundfile.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as out:
        while written < seconds * rate:
            digit, _ = soundfile.read(sources[rng.integers(len(sources))], dtype="float32")
            pause = 0.003 * rng.standard_normal(round(rng.uniform(0.2, 0.8) * rate)).astype(np.float32)
            out.write(digit)
            out.write(pause)
            written += len(digit) + len(pause)
    return written / rate


def measure(model: Path, audio_path: Path, output_dir: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one `asr transcribe` subprocess."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", str(audio_path), "--model", str(model),
                    "--output-dir", str(output_dir), "--format", "all", "--quiet"], check=True)
    elapsed = time.perf_counter() - started
    # The largest peak of any child waited for: this process runs only this one (see main).
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, elapsed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("work/fsdd-run/model/model.keras"))
    parser.add_argument("--recordings", type=Path, default=FSDD_RECORDINGS)
    parser.add_argument("--minutes", type=float, nargs="+", default=[60.0])
    args = parser.parse_args(argv)
    if len(args.minutes) > 1:  # one process per length, so each peak is that run's own
        for minutes in args.minutes:
            subprocess.run([sys.executable, __file__, "--model", str(args.model), "--recordings",
                            str(args.recordings), "--minutes", str(minutes)], check=True)
        return
    with tempfile.TemporaryDirectory() as folder:
        audio_path = Path(folder) / "long.wav"
        seconds = synthesise(audio_path, args.minutes[0] * 60, args.recordings)
        peak, elapsed = measure(args.model, audio_path, Path(folder) / "out")
        words = len(json.loads((Path(folder) / "out" / "long.json").read_text())["words"])
    print(json.dumps({"audio_minutes": round(seconds / 60, 1), "peak_rss_mb": round(peak),
                      "wall_seconds": round(elapsed, 1), "rtf": round(elapsed / seconds, 4), "words": words}))


if __name__ == "__main__":
    main()
