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
reads its own utterances and nothing else (`asr.training.store_loader.StoreLoader`). The
shards are plain TFRecord files too: `dataset` reads them with `tf.data` alone.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf

from asr import audio, augment, features, fileio
from asr.config import AugmentConfig, ConfigError, FeatureConfig, from_dict, to_dict
from asr.decoding.ctc import label_frames
from asr.errors import AsrError, raise_if_interrupted
from asr.manifest_index import ManifestIndex, read_records
from asr.quiet import import_tensorflow_quietly
from asr.text import normalize

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
        differ = [key for key, value in settings.items() if existing.get(key) != value]
        if differ:
            raise StoreError(f"{folder}: holds a store of other settings ({', '.join(differ)}); "
                             "use another folder or delete it")
        return
    folder.mkdir(parents=True, exist_ok=True)
    fileio.write_json(path, settings)


def _write_shard(task) -> None:
    """Extract one shard's features and write its records, index rows and summary."""
    manifest, root, folder, shard, offset, first, count, settings = task
    folder, config = Path(folder), from_dict(FeatureConfig, settings["features"])
    rows, ids, dropped, characters, position_bytes = [], [], collections.Counter(), set(), 0
    other_speech = functools.partial(_other_speech, manifest, root, config.sample_rate)
    corruptions = from_dict(AugmentConfig, settings["corruptions"])  # once, not per utterance
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
                                                        settings, corruptions, other_speech)):
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
            corruptions: AugmentConfig, other_speech):
    """`samples`, then its settings["copies"] copies corrupted per `corruptions`: copy c's
    drawn with a generator seeded by (settings["seed"], *key, c), key being (utterance
    position, speed number); `other_speech(rng)` gives babble's talkers."""
    yield samples
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
