"""The benchmark set the bench_*.py scripts share: a manifest's audio, references and length."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from asr import audio
from asr.manifest import read_manifest
from asr.text import normalize


@dataclass(frozen=True)
class BenchmarkSet:
    utterances: list  # the manifest's records
    seconds: float  # audio length in all

    @property
    def paths(self) -> list[str]:
        return [u.audio_filepath for u in self.utterances]

    @property
    def references(self) -> list[str]:
        """Normalised, as training and scoring see them."""
        return [normalize(u.text) for u in self.utterances]


def read_benchmark_set(manifest: Path) -> BenchmarkSet:
    """Read `manifest` and print one line: files, audio seconds, CPUs and the load average."""
    utterances = read_manifest(manifest)
    paths = [u.audio_filepath for u in utterances]
    seconds = sum(audio.duration(path) for path in paths)
    print(f"{len(paths)} files, {seconds:.0f} s of audio, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    return BenchmarkSet(utterances, seconds)
