"""Right-padded batches of sequences: lengths and masks through a time reduction, frame
stacking, and reversal within each sequence's own length.

A mask is (batch, time) booleans, True on real frames; a sequence's length is
its count of True. Shared by the BiLSTM layer (`asr.layers`), the model's
logit lengths and the loaders' CTC feasibility checks.
"""

from __future__ import annotations

from keras import ops


def reduce_lengths(lengths, factor: int):
    """Frame counts after stacking `factor` frames: ceil(lengths / factor).

    Works on Python ints, numpy arrays and backend tensors (e.g. CTC input lengths).
    """
    return (lengths + factor - 1) // factor


def reduce_mask(mask, factor: int):
    """(batch, time) right-padded mask -> (batch, ceil(time / factor)).

    A stacked frame is valid when its first source frame is, which matches
    `reduce_lengths` and the zero padding added by the time reduction.
    """
    return mask if factor == 1 else mask[:, ::factor]


def stack_frames(inputs, factor: int):
    """(batch, time, features) -> (batch, ceil(time / factor), factor * features).

    Concatenates each group of `factor` adjacent frames (pyramidal BiLSTM,
    Chan et al. 2016); the time axis is zero-padded to a multiple of `factor`.
    """
    if factor == 1:
        return inputs
    missing = (-ops.shape(inputs)[1]) % factor
    inputs = ops.pad(inputs, [[0, 0], [0, missing], [0, 0]])
    return ops.reshape(inputs, (ops.shape(inputs)[0], -1, factor * inputs.shape[-1]))


def reverse_within_lengths(inputs, lengths):
    """Reverse the first `lengths[b]` frames of each row of (batch, time, features); padding stays put.

    Its own inverse; with `lengths=None` the whole time axis is reversed.
    """
    if lengths is None:
        return ops.flip(inputs, axis=1)
    batch, steps = ops.shape(inputs)[0], ops.shape(inputs)[1]
    positions = ops.arange(steps, dtype="int32")[None, :]
    lengths = ops.cast(lengths, "int32")[:, None]
    sources = ops.where(positions < lengths, lengths - 1 - positions, positions)
    # A gather of whole rows of the flattened batch: ~10x faster than take_along_axis on TF CPU.
    rows = ops.reshape(sources + ops.arange(batch, dtype="int32")[:, None] * steps, (-1,))
    flat = ops.take(ops.reshape(inputs, (-1, inputs.shape[-1])), rows, axis=0)
    return ops.reshape(flat, ops.shape(inputs))
