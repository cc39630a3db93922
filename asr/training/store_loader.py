"""Training from feature stores: `StoreLoader` serves their utterances as `asr.data.UtteranceLoader`
serves a manifest's, for `asr.data.sampled_dataset`.

Per utterance it holds its index rows and duration; a batch reads its own
records (`asr.training.store.FeatureStore.read`) and applies the frequency warp (VTLP) to
their features. Waveform corruptions pick one of the utterance's stored
corrupted copies (`augment.corrupted_copies`), the one standing for the
corruption drawn, so the loader never touches audio.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Sequence

import numpy as np

from asr import augment
from asr.caches import memory_cache
from asr.config import AugmentConfig, FeatureConfig, to_dict
from asr.data import MEMORY_BYTES, pad
from asr.sequences import reduce_lengths
from asr.text import Vocabulary
from asr.training.store import FeatureStore, StoreError


class StoreLoader:
    """The training utterances of one or more stores, as `asr.data.UtteranceLoader` serves
    manifests'; `corpora` numbers each utterance's store, for `data.train_weights`.

    Keeps the utterances `filter_utterances` would: transcripts within the
    vocabulary (checked on each store's characters), at most `max_duration`
    seconds, CTC-feasible at the fastest of `speed_factors` (each must be stored).
    Holds per utterance its index rows and duration; features are read when a
    batch needs them, and kept in memory when all those training reads fit in
    `memory_bytes`. `augmentation`'s frequency warp (VTLP) applies to the stored
    features; its waveform corruptions pick one of each utterance's stored
    corrupted copies, which must have been drawn with the same settings.
    """

    def __init__(self, folders, vocabulary: Vocabulary, feature_config: FeatureConfig, *,
                 speed_factors=(), subsampling: int = 1, max_duration: float = float("inf"),
                 memory_bytes: int = MEMORY_BYTES, augmentation: AugmentConfig = AugmentConfig()):
        folders = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
        self.stores = [FeatureStore(folder) for folder in folders]
        self.vocabulary, self.feature_config = vocabulary, feature_config
        self.augmentation = augmentation
        speeds = tuple(speed_factors) or (1.0,)
        # Keyed as float32: the sampler's plan carries speeds in that type.
        self.columns = {np.float32(speed): column for column, speed in enumerate(speeds)}
        self.dropped = collections.Counter()
        parts = [self._usable(store, speeds, subsampling, max_duration) for store in self.stores]
        self.rows = np.concatenate([rows for rows, _ in parts])  # (n, speeds): each one's copy 0
        self.durations = np.concatenate([durations for _, durations in parts])
        self.corpora = np.repeat(np.arange(len(parts)), [len(rows) for rows, _ in parts])
        self.dropped = +self.dropped  # without zero counts
        self.variants = 1  # copies of an utterance and speed that training reads
        if augmentation.corrupts:
            self.variants = max(store.copies for store in self.stores)
        frames = sum(np.asarray(store.index["frames"])[rows].sum()
                     for store, (rows, _) in zip(self.stores, parts))
        self.memory = memory_cache(self.variants * frames * feature_config.size * 4, memory_bytes)
        self.loaded, self._lock = 0, threading.Lock()  # records read, not served from memory

    def _usable(self, store: FeatureStore, speeds, subsampling: int, max_duration: float):
        """(copy 0's rows (n, speeds), durations (n,)) of `store`'s usable utterances; counts
        the others in self.dropped."""
        self._check(store, speeds)
        stored = store.settings["speeds"]
        first = np.arange(0, len(store), store.copies + 1).reshape(-1, len(stored))
        rows = first[:, [stored.index(speed) for speed in speeds]]
        frames = np.asarray(store.index["frames"])[rows].min(axis=1)  # at the fastest speed
        durations = np.asarray(store.index["duration"])[rows[:, 0]].astype(np.float64)
        too_long = durations > max_duration
        infeasible = ~too_long & (reduce_lengths(frames, subsampling)
                                  < store.index["label_frames"][rows[:, 0]])
        keep = ~(too_long | infeasible)
        self.dropped.update(store.settings["dropped"])
        self.dropped.update({"longer than max_duration": int(too_long.sum()),
                             "transcript too long for its audio": int(infeasible.sum())})
        return rows[keep], durations[keep]

    def _check(self, store: FeatureStore, speeds) -> None:
        """StoreError unless `store` holds what training asks of it."""
        folder, stored = store.folder, store.settings["speeds"]
        if store.feature_config != self.feature_config:
            differ = _differ(to_dict(store.feature_config), to_dict(self.feature_config))
            raise StoreError(f"{folder}: holds other features (features.{', features.'.join(differ)})")
        missing = sorted(set(speeds) - set(stored))
        if missing:
            raise StoreError(f"{folder}: holds no features at speed(s) {missing} (it has {stored}); "
                             "build it with those --speeds")
        outside = sorted(set(store.settings["characters"]) - set(self.vocabulary.characters))
        if outside:
            raise StoreError(f"{folder}: transcripts use characters outside the vocabulary: "
                             f"{''.join(outside)!r}")
        if not self.augmentation.corrupts:
            return
        if not store.copies:
            raise StoreError(f"{folder}: holds no corrupted copies for augment's waveform "
                             "corruptions: build it with augment.corrupted_copies, or train from "
                             "data.train_manifest")
        differ = _differ(store.settings["corruptions"], augment.corruption_settings(self.augmentation))
        if differ:
            raise StoreError(f"{folder}: its copies were corrupted with other settings "
                             f"(augment.{', augment.'.join(differ)})")

    def __len__(self) -> int:
        return len(self.rows)

    def keys(self) -> Sequence[str]:
        """The utterances' ids, read from the indexes when asked for."""
        return _Keys(self.stores, self.corpora, self.rows[:, 0])

    def example(self, index: int, speed: float = 1.0, copy: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Utterance `index` at `speed`, as stored (copy 0) or its corrupted `copy`:
        features (frames, size) float32 and labels (length,) int32."""
        store = int(self.corpora[index])
        key = (store, int(self.rows[index, self.columns[np.float32(speed)]]) + copy)
        cached = self.memory.get(key)
        if cached is not None:
            return cached
        values, text = self.stores[store].read(key[1])
        labels = np.asarray(self.vocabulary.encode(text), np.int32)
        self.memory.put(key, (values, labels), values.nbytes + labels.nbytes)
        with self._lock:
            self.loaded += 1
        return values, labels

    def batch(self, indices, speeds, seed=None):
        """Zero-padded features (b, frames, size), lengths (b,), labels (b, length), label lengths (b,).

        With `seed` ((2,) ints, the batch's), row r's augmentation is drawn from
        a generator seeded by (seed, r), as `UtteranceLoader.batch` draws it.
        """
        rngs = augment.row_generators(seed, len(indices))
        feats, labels = zip(*(self._augmented(int(i), float(s), rng)
                              for i, s, rng in zip(indices, speeds, rngs)))
        return (*pad(feats, np.float32), *pad(labels, np.int32))

    def _augmented(self, index: int, speed: float, rng) -> tuple[np.ndarray, np.ndarray]:
        if rng is None:
            return self.example(index, speed)
        corruption, warp = augment.draw_augmentation(rng, self.augmentation)
        copy = 0
        if self.augmentation.corrupts:  # the copies were drawn as `corruption` was: one stands in for it
            copy = 1 + corruption.seed % self.stores[int(self.corpora[index])].copies
        values, labels = self.example(index, speed, copy)
        if warp is not None:
            values = augment.warp_frequencies(values, warp, self.feature_config)
        return values, labels


def _differ(stored: dict, wanted: dict) -> list[str]:
    """The keys of `wanted` whose values `stored` lacks or holds otherwise."""
    return [key for key, value in wanted.items() if stored.get(key) != value]


class _Keys(Sequence):
    def __init__(self, stores: list[FeatureStore], corpora: np.ndarray, rows: np.ndarray):
        self.stores, self.corpora, self.rows = stores, corpora, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, position: int) -> str:
        index = self.stores[int(self.corpora[position])].index
        return index["id"][self.rows[position]].decode("utf-8")
