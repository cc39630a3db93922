"""A sharded feature store: a manifest's features and transcripts in large TFRecord files.

`build_store` extracts the features of every utterance of a manifest, once per
speed factor, into shards of `shard_size` utterances, several processes at a
time. With `augment.corrupted_copies` K, each utterance and speed is also
stored K times corrupted, each copy's corruptions drawn as training draws them
(`asr.augment.draw_corruption`) from a generator seeded by (seed, utterance,
speed, copy): training then picks a copy instead of corrupting afresh, as
Kaldi's replicated data directories do. A store folder holds:

    store.json            the settings (`features` section, speeds, copies and their
                          corruption settings, shard size); when complete, also the
                          utterance count, characters and drops
    shard-00000.tfrecord  one `tf.train.Example` per utterance, speed and copy (`parse_example`)
    shard-00000.npy       that shard's rows of the index (`INDEX_FIELDS`)
    shard-00000.json      its drops by reason and its characters: the shard is done
    index.npy             every shard's rows, in manifest order, once all are done

Rows run utterance by utterance, speed by speed within one, copy by copy
(0: clean) within a speed. Each file is written under a temporary name and
renamed, the `.json` last, so a build killed and run again redoes only the
shards that lack one.

Training reads a record by its index row: it starts `offset` bytes into its
shard and is `size` bytes long (TFRecord framing included), so a planned batch
reads its own utterances and nothing else. The shards are plain TFRecord files
too: `dataset` reads them with `tf.data` alone.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf

from asr import audio, augment, features, fileio
from asr.caches import memory_cache
from asr.config import AugmentConfig, ConfigError, FeatureConfig, from_dict, to_dict
from asr.ctc import label_frames
from asr.data import MEMORY_BYTES, pad
from asr.errors import AsrError, raise_if_interrupted
from asr.sequences import reduce_lengths
from asr.manifest_index import ManifestIndex, read_records
from asr.quiet import import_tensorflow_quietly
from asr.text import Vocabulary, normalize

log = logging.getLogger(__name__)
STORE_VERSION = 2  # 2: corrupted copies (a version 1 store reads as one without)
INDEX_FIELDS = [
    ("position", "i8"),  # the utterance's record number in the manifest
    ("speed", "f4"),  # speed factor the features were computed at
    ("copy", "i2"),  # 0: the audio as it is; 1..copies: corrupted
    ("duration", "f4"),  # seconds of audio at speed 1.0
    ("frames", "i4"),  # feature frames stored
    ("label_frames", "i4"),  # CTC's fewest logit frames for the transcript: labels + repeats
    ("shard", "i4"),
    ("offset", "i8"),  # bytes into the shard where the record's framing starts
    ("size", "i4"),  # bytes of the record with its framing (8 + 4 + payload + 4)
]
_FRAMING = 16  # TFRecord: length (8 bytes), its CRC (4), payload, payload CRC (4)


BABBLE_SOURCES = 256  # other utterances' audio a build process keeps for babble


class StoreError(AsrError):
    """A store folder that cannot be built into or read; the message names it and says why."""


def build_store(manifest, folder, feature_config: FeatureConfig = FeatureConfig(),
                speeds=(1.0,), shard_size: int = 256, jobs: int | None = None,
                augmentation: AugmentConfig = AugmentConfig(), seed: int = 0) -> dict:
    """Write the features of `manifest` at each of `speeds` into a store at `folder`.

    With `augmentation.corrupted_copies`, also that many copies of each, its
    waveform corruptions drawn with `seed`; babble mixes other utterances of
    `manifest`. `jobs` processes (default: all cores) write one shard each at a
    time. Running it again finishes a killed build. Returns store.json's contents.
    """
    folder, index = Path(folder), ManifestIndex(manifest)
    copies = augmentation.corrupted_copies
    settings = {"version": STORE_VERSION, "features": to_dict(feature_config),
                "speeds": sorted(set(map(float, speeds))), "copies": copies,
                "corruptions": augment.corruption_settings(augmentation) if copies else {},
                "seed": seed if copies else 0, "shard_size": shard_size,
                "manifest": str(Path(manifest).resolve())}
    _claim(folder, settings)
    fileio.remove_stale_temporaries(folder)  # shards of a killed build are written again
    count = -(-len(index) // shard_size)
    todo = [shard for shard in range(count) if not _shard_path(folder, shard, ".json").exists()]
    log.info("%s: %d of %d shard(s) to write", folder, len(todo), count)
    tasks = [(str(index.path), str(index.root), str(folder), shard,
              int(index.offsets[shard * shard_size]), shard * shard_size,
              min(shard_size, len(index) - shard * shard_size), settings)
             for shard in todo]
    jobs = min(jobs or os.cpu_count() or 1, len(tasks))
    if jobs > 1:  # "spawn": TensorFlow's threads do not survive a fork
        # Each worker imports TensorFlow before its first shard, without the start-up lines.
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=import_tensorflow_quietly) as pool:
            for _ in pool.map(_write_shard, tasks):
                raise_if_interrupted()
    else:
        for task in tasks:
            _write_shard(task)
            raise_if_interrupted()
    return _finish(folder, count, settings)


def parse_example(serialized, feature_size: int) -> dict:
    """A serialized record -> {"id", "text", "speed", "copy", "features": (frames, feature_size) float32}."""
    record = tf.io.parse_single_example(serialized, {
        "id": tf.io.FixedLenFeature([], tf.string), "text": tf.io.FixedLenFeature([], tf.string),
        "speed": tf.io.FixedLenFeature([], tf.float32),
        "copy": tf.io.FixedLenFeature([], tf.int64, default_value=0),  # none in version 1
        "features": tf.io.FixedLenFeature([], tf.string)})
    values = tf.io.decode_raw(record.pop("features"), tf.float32, little_endian=True)
    return {**record, "features": tf.reshape(values, [-1, feature_size])}


def dataset(folder, parallel_reads: int = 4) -> tf.data.Dataset:
    """Every record of a store, read by `tf.data` alone (see `parse_example`).

    Records come round-robin from `parallel_reads` shards at a time, in a fixed order.
    """
    store = FeatureStore(folder)
    shards = sorted(str(path) for path in Path(folder).glob("shard-*.tfrecord"))
    size = store.feature_config.size
    return (tf.data.Dataset.from_tensor_slices(shards)
            .interleave(tf.data.TFRecordDataset, cycle_length=parallel_reads,
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .map(lambda record: parse_example(record, size), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


class FeatureStore:
    """A complete store: `index` (rows, `INDEX_FIELDS` and "id"), memory-mapped, `copies` and `read`."""

    def __init__(self, folder):
        self.folder = Path(folder)
        try:
            self.settings = json.loads((self.folder / "store.json").read_text())
        except (OSError, ValueError) as error:
            raise StoreError(f"{self.folder}: not a feature store ({error})") from None
        if not self.settings.get("complete"):
            raise StoreError(f"{self.folder}: the store is incomplete; run `asr prepare-features` "
                             "with the same arguments again to finish it")
        self.index = np.load(self.folder / "index.npy", mmap_mode="r")
        self.copies = self.settings.get("copies", 0)  # corrupted copies of each utterance and speed
        try:  # through from_dict: keys renamed since, and fields added since, still load
            self.feature_config = from_dict(FeatureConfig, self.settings["features"])
        except ConfigError as error:
            raise StoreError(f"{self.folder}: its features cannot be read ({error})") from None

    def __len__(self) -> int:
        return len(self.index)

    def read(self, row: int) -> tuple[np.ndarray, str]:
        """Row `row`'s features (frames, feature_size) float32 and normalised transcript."""
        entry = self.index[row]
        with open(_shard_path(self.folder, int(entry["shard"]), ".tfrecord"), "rb") as shard:
            record = os.pread(shard.fileno(), int(entry["size"]), int(entry["offset"]))
        example = tf.train.Example.FromString(record[12:-4]).features.feature
        values = np.frombuffer(example["features"].bytes_list.value[0], "<f4")
        return (values.reshape(int(entry["frames"]), self.feature_config.size),
                example["text"].bytes_list.value[0].decode("utf-8"))


def _claim(folder: Path, settings: dict) -> None:
    """Start a store at `folder`, or check that the store there has the same settings."""
    path = folder / "store.json"
    if path.exists():
        existing = json.loads(path.read_text())
        if {key: existing.get(key) for key in settings} != settings:
            raise StoreError(f"{folder}: holds a store of other settings (manifest, features, "
                             "speeds or shard size); use another folder or delete it")
        return
    folder.mkdir(parents=True, exist_ok=True)
    fileio.write_json(path, settings)


def _write_shard(task) -> None:
    """Extract one shard's features and write its records, index rows and summary."""
    manifest, root, folder, shard, offset, first, count, settings = task
    folder, config = Path(folder), from_dict(FeatureConfig, settings["features"])
    rows, ids, dropped, characters, position_bytes = [], [], collections.Counter(), set(), 0
    other_speech = functools.partial(_other_speech, manifest, root, config.sample_rate)
    records = _shard_path(folder, shard, ".tfrecord")
    with fileio.atomic_path(records) as partial, tf.io.TFRecordWriter(str(partial)) as writer:
        for position, utterance in enumerate(read_records(manifest, offset, count, root), first):
            text = normalize(utterance.text)
            if not text:
                dropped["empty transcript"] += 1
                continue
            try:
                samples = audio.load_audio(utterance.audio_filepath, config.sample_rate)
            except audio.AudioError as error:
                log.warning("%s", error)
                dropped["unreadable audio"] += 1
                continue
            characters.update(text)
            for number, speed in enumerate(settings["speeds"]):
                sped = augment.change_speed(samples, speed, config.sample_rate)
                for copy, waveform in enumerate(_copies(sped, config.sample_rate, (position, number),
                                                        settings, other_speech)):
                    values = features.extract(waveform, config)
                    payload = _example(utterance.key, text, speed, copy, values)
                    writer.write(payload)
                    rows.append((position, speed, copy, len(samples) / config.sample_rate,
                                 len(values), label_frames(text), shard, position_bytes,
                                 len(payload) + _FRAMING))
                    ids.append(utterance.key.encode("utf-8"))
                    position_bytes += len(payload) + _FRAMING
    _save_index(_shard_path(folder, shard, ".npy"), rows, ids)
    fileio.write_json(_shard_path(folder, shard, ".json"),
                {"dropped": dict(dropped), "characters": "".join(sorted(characters))})


def _copies(samples: np.ndarray, sample_rate: int, key: tuple[int, int], settings: dict,
            other_speech):
    """`samples`, then its settings["copies"] corrupted copies: copy c's corruptions drawn
    with a generator seeded by (settings["seed"], *key, c), key being (utterance position,
    speed number); `other_speech(rng)` gives babble's talkers."""
    yield samples
    if not settings["copies"]:
        return
    corruptions = from_dict(AugmentConfig, settings["corruptions"])
    for copy in range(1, settings["copies"] + 1):
        rng = np.random.default_rng([settings["seed"], *key, copy])
        yield augment.corrupt(samples, augment.draw_corruption(rng, corruptions), sample_rate,
                              other_speech)


def _other_speech(manifest: str, root: str, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A random utterance's audio from `manifest`, for babble; unreadable files are passed over."""
    index = _manifest_index(manifest, root)
    for _ in range(100):
        try:
            return _speech(manifest, root, sample_rate, int(rng.integers(len(index))))
        except audio.AudioError:
            continue
    raise StoreError(f"{manifest}: found no readable audio to mix into babble in 100 tries")


@functools.lru_cache(maxsize=4)
def _manifest_index(manifest: str, root: str) -> ManifestIndex:
    return ManifestIndex(manifest, root)  # once per process: it reads the whole manifest


@functools.lru_cache(maxsize=BABBLE_SOURCES)
def _speech(manifest: str, root: str, sample_rate: int, position: int) -> np.ndarray:
    samples = audio.load_audio(_manifest_index(manifest, root)[position].audio_filepath, sample_rate)
    samples.flags.writeable = False  # shared by every later babble: corruptions copy it
    return samples


def _example(key: str, text: str, speed: float, copy: int, values: np.ndarray) -> bytes:
    feature = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        "id": feature(bytes_list=tf.train.BytesList(value=[key.encode("utf-8")])),
        "text": feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")])),
        "speed": feature(float_list=tf.train.FloatList(value=[speed])),
        "copy": feature(int64_list=tf.train.Int64List(value=[copy])),
        "features": feature(bytes_list=tf.train.BytesList(
            value=[values.astype("<f4", copy=False).tobytes()])),
    })).SerializeToString(deterministic=True)  # map keys sorted: the same bytes in any process


def _save_index(path: Path, rows, ids) -> None:
    width = max((len(key) for key in ids), default=1)
    table = np.empty(len(rows), [("id", f"S{width}"), *INDEX_FIELDS])
    for name, column in zip([field for field, _ in INDEX_FIELDS], zip(*rows) if rows else ()):
        table[name] = column
    table["id"] = ids
    _save_table(path, table)


def _finish(folder: Path, count: int, settings: dict) -> dict:
    """Join the shards' index rows into index.npy and mark the store complete."""
    tables, dropped, characters = [], collections.Counter(), set()
    for shard in range(count):
        tables.append(np.load(_shard_path(folder, shard, ".npy")))
        summary = json.loads(_shard_path(folder, shard, ".json").read_text())
        dropped.update(summary["dropped"])
        characters.update(summary["characters"])
    width = max((table.dtype["id"].itemsize for table in tables), default=1)
    kind = np.dtype([("id", f"S{width}"), *INDEX_FIELDS])
    index = np.concatenate([table.astype(kind) for table in tables]) if tables else np.empty(0, kind)
    _save_table(folder / "index.npy", index)
    settings = {**settings, "complete": True, "shards": count, "entries": len(index),
                "utterances": int(np.sum((index["speed"] == settings["speeds"][0]) & (index["copy"] == 0))),
                "characters": "".join(sorted(characters)), "dropped": dict(dropped)}
    fileio.write_json(folder / "store.json", settings)
    return settings


def _save_table(path: Path, table: np.ndarray) -> None:
    with fileio.atomic_open(path, "wb") as out:
        np.save(out, table)


def _shard_path(folder: Path, shard: int, suffix: str) -> Path:
    return folder / f"shard-{shard:05d}{suffix}"


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
