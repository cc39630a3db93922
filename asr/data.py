"""From manifests to `tf.data` batches for training and evaluation.

Batches are `(inputs, targets)` pairs of dicts:
inputs  = {"features": (batch, frames, feature_size) float32, "feature_lengths": (batch,) int32}
targets = {"labels": (batch, label_length) int32, "label_lengths": (batch,) int32}
Padding is zeros; the lengths say what is real.

A `BatchSampler` plans each epoch from durations alone: which utterances share
a batch (shuffled, bucketed by length), their speed factors and a mask seed per
batch. The plan is a function of (seed, epoch) only, so a resumed run skips the
batches it has done without loading them, and the utterances of any batch can
be named without carrying strings through the model.
"""

from __future__ import annotations

import collections
import os
import threading
from dataclasses import dataclass, replace

import numpy as np
import tensorflow as tf

from asr import audio, augment, features
from asr.caches import FeatureCache, MemoryCache, memory_cache
from asr.config import AugmentConfig, FeatureConfig, TrainConfig
from asr.decoding.ctc import label_frames
from asr.manifest import Utterance
from asr.sequences import reduce_lengths
from asr.text import Vocabulary, normalize

# The memory cache's bound unless a caller sets one: train.memory_cache_mb's default.
MEMORY_BYTES = TrainConfig().memory_cache_bytes


def filter_utterances(utterances, vocabulary: Vocabulary, feature_config: FeatureConfig,
                      subsampling: int, max_duration: float = float("inf"),
                      fastest_speed: float = 1.0):
    """Keep utterances CTC can learn from; count the others by reason.

    Transcripts are normalised on the way. CTC needs at least one logit frame
    per label plus one blank between repeated labels, so an utterance is
    feasible when ceil(frames / subsampling) >= len(labels) + repeats. With
    speed perturbation, pass the largest factor as `fastest_speed`: it
    shortens the audio most. Returns (kept utterances, collections.Counter of reasons).
    """
    kept, dropped = [], collections.Counter()
    for utterance in utterances:
        reason, utterance = _check(utterance, vocabulary, feature_config, subsampling,
                                   max_duration, fastest_speed)
        if reason:
            dropped[reason] += 1
        else:
            kept.append(utterance)
    return kept, dropped


def ctc_feasible(labels, logit_frames: int) -> bool:
    return logit_frames >= label_frames(labels)


def _check(utterance: Utterance, vocabulary, feature_config, subsampling, max_duration,
           fastest_speed):
    text = normalize(utterance.text)
    if not text:
        return "empty transcript", utterance
    if not vocabulary.covers(text):
        return "characters outside the vocabulary", utterance
    try:  # the header is cheap to read and catches missing or broken files before training
        seconds = audio.duration(utterance.audio_filepath)
    except audio.AudioError:
        return "unreadable audio", utterance
    if seconds <= 0:
        return "empty audio", utterance
    if seconds > max_duration:
        return "longer than max_duration", utterance
    samples = int(seconds * feature_config.sample_rate / fastest_speed)
    frames = features.num_frames(samples, feature_config)
    if not ctc_feasible(vocabulary.encode(text), reduce_lengths(frames, subsampling)):
        return "transcript too long for its audio", utterance
    return None, replace(utterance, text=text, duration=seconds)


@dataclass(frozen=True)
class PlannedBatch:
    indices: np.ndarray  # (batch,) int64 positions in the utterance list
    speeds: np.ndarray  # (batch,) float32 speed factors
    frames: np.ndarray  # (batch,) int64 feature frames expected after the speed change
    seed: np.ndarray  # (2,) int64 stateless seed for this batch's masks


class BatchSampler:
    """Plans the batches of each epoch from utterance durations.

    With `shuffle`, each epoch draws an order and one factor per utterance from
    `speed_factors`, and batches form per length bucket as
    `tf.data.Dataset.bucket_by_sequence_length` forms them: a bucket yields a
    batch when full, and partly filled buckets are flushed at the end. Without
    it, batches are consecutive in the given order. With `multiple_of`, batch
    sizes are cut down to a multiple of it, so that each replica of a
    distributed step takes an equal share; the utterances cut are the last
    drawn, which differ from epoch to epoch. Iterating yields the current epoch's batches after the
    first `skip`; `set_epoch` moves on, as a training callback does each epoch.

    Several corpora mix by `corpora` ((utterances,) corpus number of each) and
    `weights` (one per corpus): a shuffled epoch takes round(weight * size) of
    each corpus's utterances, a fresh random subset below 1, whole passes and
    then a subset above it.
    """

    def __init__(self, durations, feature_config: FeatureConfig, batch_size: int, *,
                 shuffle: bool = False, bucket_boundaries=(), speed_factors=(), seed: int = 0,
                 multiple_of: int = 1, corpora=None, weights=()):
        self.durations = np.asarray(durations, dtype=np.float64)
        self.feature_config, self.batch_size, self.shuffle = feature_config, batch_size, shuffle
        frames_per_second = feature_config.sample_rate / feature_config.hop_length
        self.boundaries = [int(seconds * frames_per_second) for seconds in bucket_boundaries]
        self.speed_factors = tuple(speed_factors) or (1.0,)
        self.seed, self.multiple_of = seed, multiple_of
        self.corpora = (np.zeros(len(self.durations), np.int64) if corpora is None
                        else np.asarray(corpora, np.int64))
        self.weights = tuple(weights) or (1.0,) * (int(self.corpora.max(initial=-1)) + 1)
        if len(self.weights) <= self.corpora.max(initial=-1) or min(self.weights, default=0) < 0:
            raise ValueError(f"need a weight >= 0 for each of corpora 0..{self.corpora.max()}, "
                             f"got {self.weights}")
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def plan(self, epoch: int) -> list[PlannedBatch]:
        """Every batch of `epoch`, in training order."""
        rng = np.random.default_rng([self.seed, epoch])
        order = self._draw(rng) if self.shuffle else np.arange(len(self.durations))
        count = len(order)
        speeds = (rng.choice(self.speed_factors, size=count) if self.shuffle
                  else np.ones(count)).astype(np.float32)
        samples = (self.durations[order] * self.feature_config.sample_rate / speeds).astype(np.int64)
        frames = features.num_frames(samples, self.feature_config)
        if self.shuffle:
            buckets = np.searchsorted(self.boundaries, frames, side="right")
            groups = _bucketed(np.arange(count), buckets, self.batch_size)
        else:
            groups = np.array_split(np.arange(count), np.arange(self.batch_size, count, self.batch_size))
        seeds = rng.integers(2**31, size=(len(groups), 2))
        groups = [group[:len(group) - len(group) % self.multiple_of] for group in groups]
        return [PlannedBatch(order[group], speeds[group], frames[group], seed)
                for group, seed in zip(groups, seeds) if len(group)]

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        """The shuffled utterance indices of one epoch, each corpus taken by its weight."""
        if all(weight == 1.0 for weight in self.weights):
            return rng.permutation(len(self.durations))
        taken = []
        for corpus, weight in enumerate(self.weights):
            members = np.flatnonzero(self.corpora == corpus)
            wanted = round(weight * members.size)
            passes = [rng.permutation(members) for _ in range(-(-wanted // max(members.size, 1)))]
            taken.append(np.concatenate(passes or [members])[:wanted])
        return rng.permutation(np.concatenate(taken))

    def __len__(self) -> int:
        return len(self.plan(self.epoch))

    def __iter__(self):
        return iter(self.plan(self.epoch)[self.skip:])


def _bucketed(order, buckets, batch_size: int) -> list[np.ndarray]:
    """Batches as `order` fills each bucket; then the partly filled buckets, in bucket order."""
    filling = collections.defaultdict(list)
    batches = []
    for index in order:
        bucket = filling[buckets[index]]
        bucket.append(index)
        if len(bucket) == batch_size:
            batches.append(np.array(bucket))
            bucket.clear()
    batches += [np.array(filling[key]) for key in sorted(filling) if filling[key]]
    return batches


class UtteranceLoader:
    """Features and labels by utterance index, through a bounded memory cache and an optional disk cache.

    Features stay in memory when all of them, at each of `speed_factors`, fit
    in `memory_bytes`; otherwise none do. With waveform corruptions on, whose
    features are computed afresh each time, so do the waveforms (float32, at the
    original speed) within a budget of `memory_bytes` of their own: babble reads
    several other utterances for each one it corrupts. The planner's durations
    and the labels are then all that grows with the corpus.
    """

    def __init__(self, utterances, vocabulary: Vocabulary, feature_config: FeatureConfig, *,
                 memory_bytes: int = MEMORY_BYTES, cache_dir=None, speed_factors=(),
                 augmentation: AugmentConfig = AugmentConfig()):
        self.paths = [u.audio_filepath for u in utterances]
        self.ids = [u.key for u in utterances]
        self.durations = np.array([u.duration for u in utterances], np.float64)
        self.labels = [np.asarray(vocabulary.encode(u.text), np.int32) for u in utterances]
        self.feature_config, self.augmentation = feature_config, augmentation
        frames = self.durations.sum() * feature_config.sample_rate / feature_config.hop_length
        self.memory = memory_cache(max(len(speed_factors), 1) * frames * feature_config.size * 4,
                                   memory_bytes)
        self.disk = FeatureCache(cache_dir, feature_config) if cache_dir else None
        self.waveforms = (memory_cache(self.durations.sum() * feature_config.sample_rate * 4, memory_bytes,
                                       "waveforms") if augmentation.corrupts else MemoryCache(0))
        self.loaded, self._lock = 0, threading.Lock()  # utterances read or extracted, not from memory

    def keys(self) -> list[str]:
        """The utterances' ids."""
        return self.ids

    def features(self, index: int, speed: float = 1.0,
                 rng: np.random.Generator | None = None) -> np.ndarray:
        """(frames, feature_size) float32 for utterance `index` played `speed` times faster.

        With `rng`, the augmentation config's waveform corruptions and
        frequency warp are drawn from it and applied; a corrupted utterance
        bypasses the caches, a clean one is read through them.
        """
        corruption, warp = (augment.draw_augmentation(rng, self.augmentation) if rng is not None
                            else (None, None))
        if corruption:
            samples = self.samples(index, speed)
            values = features.extract(augment.corrupt(samples, corruption,
                                                      self.feature_config.sample_rate,
                                                      self._other_speech), self.feature_config)
        else:
            values = self._clean_features(index, speed)
        if warp is not None:
            values = augment.warp_frequencies(values, warp, self.feature_config)
        return values

    def samples(self, index: int, speed: float = 1.0) -> np.ndarray:
        """(samples,) float32 audio of utterance `index` played `speed` times faster."""
        rate = self.feature_config.sample_rate
        samples = self.waveforms.get(index)
        if samples is None:
            samples = audio.load_audio(self.paths[index], rate)
            samples.flags.writeable = False  # shared by every later use: corruptions copy it
            self.waveforms.put(index, samples)
        return augment.change_speed(samples, speed, rate)

    def batch(self, indices, speeds, seed=None):
        """Zero-padded features (b, frames, size), lengths (b,), labels (b, length), label lengths (b,).

        With `seed` ((2,) ints, the batch's), row r is augmented with a
        generator seeded by (seed, r).
        """
        rngs = augment.row_generators(seed, len(indices))
        feats = [self.features(int(i), float(s), rng) for i, s, rng in zip(indices, speeds, rngs)]
        labels = [self.labels[int(i)] for i in indices]
        return (*pad(feats, np.float32), *pad(labels, np.int32))

    def _clean_features(self, index: int, speed: float) -> np.ndarray:
        key = (index, speed)
        values = self.memory.get(key)
        if values is not None:
            return values
        with self._lock:
            self.loaded += 1
        path = self.paths[index]
        values = self.disk.load(path, speed) if self.disk else None
        if values is None:
            values = features.extract(self.samples(index, speed), self.feature_config)
            if self.disk:
                self.disk.save(path, speed, values)
        self.memory.put(key, values)
        return values

    def _other_speech(self, rng: np.random.Generator) -> np.ndarray:
        """A random training utterance's audio, for babble."""
        return self.samples(int(rng.integers(len(self.paths))))


def pad(arrays, dtype):
    """Arrays of shape (length_i, ...) -> zero-padded (n, max length, ...) and lengths (n,) int32."""
    lengths = np.array([len(a) for a in arrays], np.int32)
    padded = np.zeros((len(arrays), lengths.max(initial=0), *arrays[0].shape[1:]), dtype)
    for row, array in enumerate(arrays):
        padded[row, :len(array)] = array
    return padded, lengths


def sampled_dataset(sampler: BatchSampler, loader: UtteranceLoader,
                    augmentation: AugmentConfig = AugmentConfig(),
                    share: tuple[int, int, int] = (0, 1, 1)) -> tf.data.Dataset:
    """The batches `sampler` plans for its current epoch, loaded in parallel, masks applied.

    The plan is read when iteration starts, so `sampler.set_epoch` before each
    epoch's iterator is created picks that epoch's batches. `share` is
    (first, count, total): each planned batch is cut into `total` equal slices
    (plan multiples of it) and only slices first .. first + count - 1 are
    loaded, one element each, as one worker of a multi-worker run feeds its
    replicas; `loader` is the `UtteranceLoader` or `asr.training.store_loader.StoreLoader` to read through.
    """
    size = loader.feature_config.size
    masks = augmentation.frequency_masks or augmentation.time_masks
    first, count, total = share

    def planned():
        for batch in sampler:
            width = len(batch.indices) // total
            for part in range(first, first + count):
                rows = slice(part * width, (part + 1) * width)
                seed = batch.seed + np.array([0, part])  # its own masks for each slice
                yield batch.indices[rows], batch.speeds[rows], seed

    def load_batch(indices, speeds, seed):
        _yield_to_training()
        return loader.batch(indices, speeds, seed)

    def load(indices, speeds, seed):
        feats, lengths, labels, label_lengths = tf.numpy_function(
            load_batch, [indices, speeds, seed], [tf.float32, tf.int32, tf.int32, tf.int32],
            stateful=False)
        feats.set_shape([None, None, size])
        labels.set_shape([None, None])
        lengths.set_shape([None])
        label_lengths.set_shape([None])
        if masks:
            feats = augment.spec_augment(feats, lengths, seed, augmentation)
        return ({"features": feats, "feature_lengths": lengths},
                {"labels": labels, "label_lengths": label_lengths})

    signature = (tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.float32),
                 tf.TensorSpec([2], tf.int64))
    dataset = tf.data.Dataset.from_generator(planned, output_signature=signature)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_dataset(utterances, vocabulary: Vocabulary, feature_config: FeatureConfig, *,
                 batch_size: int, training: bool, bucket_boundaries=(), seed: int = 0,
                 memory_bytes: int = MEMORY_BYTES) -> tf.data.Dataset:
    """Parallel feature extraction, optional shuffling, length bucketing, padded batches.

    `bucket_boundaries` are in seconds; utterances of similar length share a
    batch, which cuts the padding the model computes over. Features are
    computed once and kept in memory for later epochs when all of them fit in
    `memory_bytes` (0: read once, as scoring does). The
    training order is that of epoch 0; `train` builds a `BatchSampler` itself
    to move through epochs.
    """
    sampler = BatchSampler([u.duration for u in utterances], feature_config, batch_size,
                           shuffle=training, bucket_boundaries=bucket_boundaries, seed=seed)
    loader = UtteranceLoader(utterances, vocabulary, feature_config,
                             memory_bytes=memory_bytes)
    return sampled_dataset(sampler, loader)


def _yield_to_training() -> None:
    """Run the calling thread under SCHED_IDLE, on the cycles the training step leaves idle.

    On CPU, the training step's sequential LSTM scan is latency-bound: loader
    threads at its priority preempted it, and an augmented FSDD step on 2 cores
    took about 1.6x its in-memory time; 10 steps of niceness below it, 1.15x
    (twice); under SCHED_IDLE, which a waking normal thread preempts at once,
    1.04-1.10x (`scripts/bench_input.py`'s ratio of totals, six runs on one 2-core
    machine). Loading in a worker process instead, away from this process's GIL,
    gained nothing (1.05 and 1.06x, two batches ahead): what is left is the loader's
    work itself. Still scheduled, at a small share, when other processes keep every
    core busy. Idempotent, since TensorFlow reuses its threads; Linux's, so elsewhere
    this does nothing.
    """
    if not hasattr(os, "SCHED_IDLE"):
        return
    thread = threading.get_native_id()
    if os.sched_getscheduler(thread) != os.SCHED_IDLE:
        os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
