"""Training-time augmentation: speed perturbation (on audio) and SpecAugment masks (on features).

Both are deterministic given their inputs: the speed factor and the mask seed
are drawn by the batch sampler from (seed, epoch), so a resumed run sees the
same augmented batches as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from asr.audio import resample
from asr.config import AugmentConfig


def change_speed(samples: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """Play (samples,) audio `factor` times faster, as sox's `speed` effect does.

    Tempo and pitch change together; the output has about samples / factor samples.
    Resampling from sample_rate * factor to sample_rate is that change.
    """
    if factor == 1.0:
        return samples
    return resample(samples, round(sample_rate * factor), sample_rate)


def spec_augment(features, lengths, seed, config: AugmentConfig):
    """SpecAugment (Park et al., 2019) frequency and time masks on a padded batch.

    features: (batch, frames, bins) float32; lengths: (batch,) int32 real frames;
    seed: (2,) int stateless seed. Returns features of the same shape with masked
    values set to zero, the mean of per-utterance standardised features. Time masks
    lie within each utterance's real frames, at most `time_mask_ratio` of them
    wide, so short utterances are not wiped out and padding is never counted.
    """
    batch, frames, bins = tf.unstack(tf.shape(features))
    frequency_seed, time_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    masked_bins = _masks(frequency_seed, config.frequency_masks,
                         widest=tf.fill([batch], tf.minimum(config.frequency_mask_width, bins)),
                         extent=tf.fill([batch], bins), size=bins)
    widest_time = tf.minimum(config.time_mask_width,
                             tf.cast(config.time_mask_ratio * tf.cast(lengths, tf.float32), tf.int32))
    masked_frames = _masks(time_seed, config.time_masks, widest=widest_time, extent=lengths,
                           size=frames)
    keep = tf.logical_not(masked_frames[:, :, None] | masked_bins[:, None, :])
    return features * tf.cast(keep, features.dtype)


def _masks(seed, count: int, widest, extent, size):
    """`count` spans per row, each of width U{0..widest} within [0, extent) -> (rows, size) bool."""
    rows = tf.shape(extent)[0]
    if count == 0:
        return tf.zeros([rows, size], tf.bool)
    draws = tf.random.stateless_uniform([rows, count, 2], seed)
    width = tf.cast(draws[..., 0] * tf.cast(widest[:, None] + 1, tf.float32), tf.int32)
    width = tf.minimum(width, widest[:, None])  # a draw of exactly 1.0 is possible in float32
    room = tf.maximum(extent[:, None] - width + 1, 1)
    start = tf.minimum(tf.cast(draws[..., 1] * tf.cast(room, tf.float32), tf.int32), room - 1)
    positions = tf.range(size)[None, None, :]
    inside = (positions >= start[..., None]) & (positions < (start + width)[..., None])
    return tf.reduce_any(inside, axis=1)

