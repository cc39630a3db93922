"""From manifests to `tf.data` batches for training and evaluation.

Batches are `(inputs, targets)` pairs of dicts:
inputs  = {"features": (batch, frames, feature_size) float32, "feature_lengths": (batch,) int32}
targets = {"labels": (batch, label_length) int32, "label_lengths": (batch,) int32}
Padding is zeros; the lengths say what is real.
"""

from __future__ import annotations

import collections
from dataclasses import replace

import numpy as np
import tensorflow as tf

from asr import audio, features
from asr.config import FeatureConfig
from asr.manifest import Utterance
from asr.text import Vocabulary, normalize


def filter_utterances(utterances, vocabulary: Vocabulary, feature_config: FeatureConfig,
                      subsampling: int, max_duration: float = float("inf")):
    """Keep utterances CTC can learn from; count the others by reason.

    Transcripts are normalised on the way. CTC needs at least one logit frame
    per label plus one blank between repeated labels, so an utterance is
    feasible when ceil(frames / subsampling) >= len(labels) + repeats.
    Returns (kept utterances, collections.Counter of reasons).
    """
    kept, dropped = [], collections.Counter()
    for utterance in utterances:
        reason, utterance = _check(utterance, vocabulary, feature_config, subsampling, max_duration)
        if reason:
            dropped[reason] += 1
        else:
            kept.append(utterance)
    return kept, dropped


def ctc_feasible(labels, logit_frames: int) -> bool:
    repeats = sum(1 for a, b in zip(labels, labels[1:]) if a == b)
    return logit_frames >= len(labels) + repeats


def _check(utterance: Utterance, vocabulary, feature_config, subsampling, max_duration):
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
    frames = features.num_frames(int(seconds * feature_config.sample_rate), feature_config)
    if not ctc_feasible(vocabulary.encode(text), -(-frames // subsampling)):
        return "transcript too long for its audio", utterance
    return None, replace(utterance, text=text, duration=seconds)


def load_example(path: str, text: str, vocabulary: Vocabulary, feature_config: FeatureConfig):
    """One utterance -> (features (frames, feature_size) float32, labels (length,) int32)."""
    samples = audio.load_audio(path, feature_config.sample_rate)
    labels = np.asarray(vocabulary.encode(text), dtype=np.int32)
    return features.extract(samples, feature_config), labels


def make_dataset(utterances, vocabulary: Vocabulary, feature_config: FeatureConfig, *,
                 batch_size: int, training: bool, bucket_boundaries=(), seed: int = 0,
                 cache: bool = True) -> tf.data.Dataset:
    """Parallel feature extraction, optional shuffling, length bucketing, padded batches.

    `bucket_boundaries` are in seconds; utterances of similar length share a
    batch, which cuts the padding the model computes over. With `cache`,
    features are computed once and kept in memory for later epochs.
    """
    paths = [u.audio_filepath for u in utterances]
    texts = [u.text for u in utterances]
    size = feature_config.size

    def load(path, text):
        return load_example(path.decode(), text.decode(), vocabulary, feature_config)

    def to_tensors(path, text):
        feats, labels = tf.numpy_function(load, [path, text], [tf.float32, tf.int32], stateful=False)
        feats.set_shape([None, size])
        labels.set_shape([None])
        return {"features": feats, "feature_lengths": tf.shape(feats)[0]}, {
            "labels": labels, "label_lengths": tf.shape(labels)[0]}

    dataset = tf.data.Dataset.from_tensor_slices((paths, texts))
    dataset = dataset.map(to_tensors, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    frames_per_second = feature_config.sample_rate / feature_config.hop_length
    boundaries = [int(seconds * frames_per_second) for seconds in bucket_boundaries]
    if boundaries:
        dataset = dataset.bucket_by_sequence_length(
            element_length_func=lambda inputs, targets: inputs["feature_lengths"],
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        )
    else:
        dataset = dataset.padded_batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)
