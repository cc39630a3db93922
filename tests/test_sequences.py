"""Tests for asr.sequences: padded-batch lengths and masks, frame stacking, reversal within lengths."""

import keras
import numpy as np

from asr.sequences import reduce_lengths, reduce_mask, reverse_within_lengths, stack_frames

LENGTHS = (7, 3, 5)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_reverse_within_lengths_keeps_padding_in_place():
    x = np.arange(10, dtype="float32").reshape(2, 5, 1)
    reversed_ = to_numpy(reverse_within_lengths(x, np.array([3, 5])))[..., 0]
    np.testing.assert_array_equal(reversed_, [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]])
    np.testing.assert_array_equal(to_numpy(reverse_within_lengths(reversed_[..., None], np.array([3, 5]))), x)


def test_stack_frames_zero_pads_and_mask_follows_lengths():
    x = np.arange(15, dtype="float32").reshape(1, 5, 3)
    stacked = to_numpy(stack_frames(x, 2))
    assert stacked.shape == (1, 3, 6)
    np.testing.assert_array_equal(stacked[0, 1], [6, 7, 8, 9, 10, 11])
    np.testing.assert_array_equal(stacked[0, 2], [12, 13, 14, 0, 0, 0])
    mask = np.arange(max(LENGTHS))[None, :] < np.asarray(LENGTHS)[:, None]
    reduced = to_numpy(reduce_mask(mask, 2))
    np.testing.assert_array_equal(reduced.sum(axis=1), reduce_lengths(np.array(LENGTHS), 2))
    np.testing.assert_array_equal(reduce_lengths(np.array(LENGTHS), 2), [4, 2, 3])
