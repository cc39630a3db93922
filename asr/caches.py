"""Feature caches: on disk across runs and workers, in memory across epochs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from asr.config import FeatureConfig, to_dict
from asr.fileio import atomic_open, remove_stale_temporaries

log = logging.getLogger(__name__)
# Bump when cached features would differ for the same audio and FeatureConfig.
CACHE_VERSION = 1


class FeatureCache:
    """Features on disk, keyed by audio file (real path, size, mtime), speed and feature config.

    Entries are written atomically (`asr.fileio`), so a crash never leaves a
    partial entry, and the temporaries of killed writers are removed on opening;
    an unreadable entry counts as a miss.
    """

    def __init__(self, root, feature_config: FeatureConfig):
        settings = json.dumps([CACHE_VERSION, to_dict(feature_config)], sort_keys=True)
        self.folder = Path(root) / hashlib.sha256(settings.encode()).hexdigest()[:16]
        if self.folder.is_dir():
            remove_stale_temporaries(self.folder)

    def path(self, audio_path: str, speed: float = 1.0) -> Path:
        status = os.stat(audio_path)
        key = f"{os.path.realpath(audio_path)}\0{status.st_size}\0{status.st_mtime_ns}\0{speed!r}"
        name = hashlib.sha256(key.encode()).hexdigest()
        return self.folder / name[:2] / f"{name}.npy"

    def load(self, audio_path: str, speed: float = 1.0) -> np.ndarray | None:
        try:
            return np.load(self.path(audio_path, speed), allow_pickle=False)
        except (OSError, ValueError):
            return None

    def save(self, audio_path: str, speed: float, values: np.ndarray) -> None:
        # Not synced: an entry a power cut truncates fails np.load's header and size checks: a miss.
        with atomic_open(self.path(audio_path, speed), "wb", sync=False) as out:
            np.save(out, values, allow_pickle=False)


class MemoryCache:
    """Arrays by key, up to `limit_bytes` in all; once full, new entries are not kept.

    Training draws utterances in a new random order each epoch, so evicting one
    entry for another would not raise the hit rate; `memory_cache` gives a
    corpus that does not fit no cache at all.
    """

    def __init__(self, limit_bytes: int):
        self.limit_bytes, self.bytes, self.entries = limit_bytes, 0, {}
        self._lock = threading.Lock()  # batches load in parallel threads

    def get(self, key):
        return self.entries.get(key)

    def put(self, key, values, nbytes: int | None = None) -> None:
        """Keep `values` (`nbytes` large, default `values.nbytes`) if there is room."""
        nbytes = values.nbytes if nbytes is None else nbytes
        with self._lock:
            if key not in self.entries and self.bytes + nbytes <= self.limit_bytes:
                self.entries[key] = values
                self.bytes += nbytes


def memory_cache(corpus_bytes: float, memory_bytes: int, what: str = "features") -> MemoryCache:
    """A cache of `memory_bytes` when a corpus of `corpus_bytes` fits in it, else none (0 bytes)."""
    fits = corpus_bytes <= memory_bytes
    log.info("%s of %.2f GB %s in memory", what, corpus_bytes / 1e9, "kept" if fits else "not kept")
    return MemoryCache(memory_bytes if fits else 0)
