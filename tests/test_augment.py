import numpy as np
import pytest
import tensorflow as tf

from asr.augment import change_speed, spec_augment
from asr.config import AugmentConfig

MASKS = AugmentConfig(frequency_masks=2, frequency_mask_width=5, time_masks=3, time_mask_width=8,
                      time_mask_ratio=0.2)


def ones_batch(lengths, frames=60, bins=20):
    """Features of ones over each utterance's real frames, zero padding after."""
    features = np.zeros((len(lengths), frames, bins), np.float32)
    for row, length in enumerate(lengths):
        features[row, :length] = 1.0
    return tf.constant(features), tf.constant(lengths, tf.int32)


def augmented(lengths, seed=(1, 2), config=MASKS):
    features, lengths = ones_batch(lengths)
    return spec_augment(features, lengths, tf.constant(seed, tf.int64), config).numpy()


def test_no_masks_is_the_identity():
    features, lengths = ones_batch([60, 30])
    out = spec_augment(features, lengths, tf.constant([0, 0], tf.int64), AugmentConfig())
    np.testing.assert_array_equal(out.numpy(), features.numpy())


@pytest.mark.parametrize("seed", range(20))
def test_masks_stay_within_their_widths_and_the_real_frames(seed):
    lengths = [60, 25, 4]
    out = augmented(lengths, seed=(seed, 7))
    for row, length in enumerate(lengths):
        real = out[row, :length]
        assert not out[row, length:].any()  # padding untouched (still zero)
        masked_bins = np.flatnonzero(~real.any(axis=0))
        masked_frames = np.flatnonzero(~real.any(axis=1))
        # Two masks of at most 5 bins each; at least one bin survives in any row.
        assert len(masked_bins) <= 2 * 5
        widest = min(8, int(0.2 * length))
        assert len(masked_frames) <= 3 * widest
        kept = real[np.ix_(np.setdiff1d(np.arange(length), masked_frames),
                           np.setdiff1d(np.arange(20), masked_bins))]
        assert kept.all()  # only whole rows and columns are masked


def test_masks_are_drawn_from_the_seed_alone():
    first, again, other = (augmented([60, 40], seed) for seed in [(3, 4), (3, 4), (3, 5)])
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()
    assert (first == 0).sum() > (ones_batch([60, 40])[0].numpy() == 0).sum()  # something masked


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_change_speed_scales_length_and_pitch(tone, factor):
    samples = tone(seconds=1.0, frequency=440.0)[:, 0]
    faster = change_speed(samples, factor, 16000)
    assert len(faster) == pytest.approx(len(samples) / factor, abs=2)
    spectrum = np.abs(np.fft.rfft(faster))
    peak = np.argmax(spectrum) * 16000 / len(faster)
    assert peak == pytest.approx(440.0 * factor, abs=2.0)


def test_speed_one_is_untouched(tone):
    samples = tone(seconds=0.2)[:, 0]
    assert change_speed(samples, 1.0, 16000) is samples
