"""TensorFlow ops for a self-contained serving graph: PCM in, log-mel, greedy CTC, UTF-8 out.

Everything `asr` does in Python around the model is redone here as graph ops
with its constants baked in, so an exported model needs neither librosa nor
asr: `LogMel` is `asr.features.extract` (librosa's centred STFT with its
window, zero padding and Slaney mel filterbank, the log's floor, then the
per-utterance standardisation), and `GreedyText` is `asr.decoding.ctc.greedy_decode`
followed by the word joining of `asr.transcribe` (no leading, trailing or double
spaces).

Only numeric ops that the TFLite builtins and ONNX both have are used (matmul,
gather, cumsum, scatter): the STFT is a product of the frames with the
windowed DFT basis, and text comes out as UTF-8 bytes in a uint8 tensor, since
string tensors are TensorFlow-only. Constants are kept as NumPy arrays, which
become graph constants when traced (captured tensors would become ONNX inputs).
"""

from __future__ import annotations

import librosa
import numpy as np
import scipy.fft
import tensorflow as tf

from asr.config import FeatureConfig
from asr.features import LOG_FLOOR, STANDARDIZE_EPSILON, TINY, num_frames
from asr.text import Vocabulary


class LogMel:
    """librosa's features as graph ops: (batch, samples) PCM with lengths -> (batch, frames, size).

    A frame t of librosa's centred STFT reads samples [t·hop - n_fft/2, t·hop + n_fft/2),
    zero-padded at both ends, through the Hann window of `win_length` centred in n_fft.
    Only the window's support matters, so each frame is win_length samples, multiplied
    by the window × cos and window × sin basis of the n_fft/2 + 1 bins (a phase shift of
    the frame leaves |X|² unchanged); the audio is padded by the support's distance to
    the frame edges. frames = 1 + samples // hop, as in `asr.features.num_frames`.

    The constant matrices multiply from the left, (bins, taps) @ (taps, frames): the
    TFLite converter's dynamic-range quantization stores right-hand constants (weights)
    as int8, which would cost the features two digits.
    """

    def __init__(self, config: FeatureConfig):
        self.config = config
        n_fft, win_length = config.n_fft, config.win_length
        window = librosa.filters.get_window("hann", win_length, fftbins=True)
        self.left = n_fft // 2 - (n_fft - win_length) // 2  # samples before a frame's centre
        self.right = win_length - self.left
        taps = np.arange(win_length)[None, :] + (n_fft - win_length) // 2
        angles = 2 * np.pi * np.arange(n_fft // 2 + 1)[:, None] * taps / n_fft
        basis = np.concatenate([np.cos(angles), -np.sin(angles)]) * window[None, :]
        self.basis = basis[None].astype(np.float32)  # (1, 2·bins, win_length)
        mel = librosa.filters.mel(sr=config.sample_rate, n_fft=n_fft, n_mels=config.n_mels,
                                  fmin=config.fmin, fmax=config.fmax)
        self.mel = mel[None].astype(np.float32)  # (1, n_mels, bins)
        self.dct = None
        if config.kind == "mfcc":  # librosa.feature.mfcc: orthonormal DCT-II over mel bins
            dct = scipy.fft.dct(np.eye(config.n_mels), type=2, norm="ortho", axis=0)[:config.n_mfcc]
            self.dct = dct[None].astype(np.float32)  # (1, n_mfcc, n_mels)

    def frame_lengths(self, lengths):
        """(batch,) sample counts -> frame counts; 0 below n_fft samples, as `asr.transcribe` skips them."""
        frames = num_frames(lengths, self.config)
        return tf.where(lengths < self.config.n_fft, tf.zeros_like(frames), frames)

    def __call__(self, audio, lengths):
        """audio (batch, samples) float32, lengths (batch,) int32 -> features, frame lengths.

        Samples past a row's length are ignored; feature frames past its frame length are zero.
        """
        samples = tf.shape(audio)[1]
        audio = tf.where(tf.range(samples)[None, :] < lengths[:, None], audio, 0.0)
        audio = tf.pad(audio, [[0, 0], [self.left, self.right]])
        frames = tf.signal.frame(audio, self.config.win_length, self.config.hop_length)
        spectrum = tf.matmul(self.basis, frames, transpose_b=True)  # (batch, 2·bins, frames)
        real, imaginary = tf.split(spectrum, 2, axis=1)
        power = real * real + imaginary * imaginary
        mel = tf.matmul(self.mel, power)  # (batch, n_mels, frames)
        frame_lengths = self.frame_lengths(lengths)
        mask = tf.cast(tf.range(tf.shape(mel)[2])[None, :] < frame_lengths[:, None], tf.float32)
        features = self.log_mel(mel, mask[:, None, :])
        if self.dct is not None:
            features = tf.matmul(self.dct, features)
        features = tf.transpose(features, [0, 2, 1])
        mask = mask[:, :, None]
        if self.config.standardize == "utterance":
            count = tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
            mean = tf.reduce_sum(features * mask, axis=1, keepdims=True) / count
            # A second pass over the residuals: float32 sums of ~2000 values near -13.8 are
            # off by ~1e-5, which nearly constant bins (no energy above 4 kHz in 8 kHz audio)
            # would blow up to O(1) after dividing by their tiny spread.
            mean += tf.reduce_sum((features - mean) * mask, axis=1, keepdims=True) / count
            variance = tf.reduce_sum(tf.square((features - mean) * mask), axis=1, keepdims=True) / count
            features = (features - mean) / (tf.sqrt(variance) + STANDARDIZE_EPSILON)
        return features * mask, frame_lengths

    def log_mel(self, mel, mask):
        """`asr.features.log_mel` per row: mel (batch, n_mels, frames), mask (batch, 1, frames)."""
        if self.config.dynamic_range_db is None:
            return tf.math.log(mel + LOG_FLOOR)
        loudest = tf.reduce_max(mel * mask, axis=[1, 2], keepdims=True)  # mel >= 0: padding drops out
        floor = tf.maximum(loudest * 10 ** (-self.config.dynamic_range_db / 10), TINY)
        return tf.math.log(tf.maximum(mel, floor))


def compact(values, keep):
    """Move each row's kept entries to its front, in order.

    values (batch, width), keep (batch, width) bool -> (batch, width) with the kept
    values first and zeros after, and (batch,) counts. A scatter: dropped entries
    all land in one spare column that is cut off.
    """
    shape = tf.shape(values)
    positions = tf.cumsum(tf.cast(keep, tf.int32), axis=1) - 1
    columns = tf.where(keep, positions, shape[1])
    rows = tf.broadcast_to(tf.range(shape[0])[:, None], shape)
    spread = tf.scatter_nd(tf.stack([rows, columns], axis=-1), values, [shape[0], shape[1] + 1])
    return spread[:, :-1], tf.reduce_sum(tf.cast(keep, tf.int32), axis=1)


class GreedyText:
    """Best-path CTC decoding to UTF-8: (batch, frames, classes) logits -> bytes, byte counts.

    Per row: argmax per frame within the true length, repeats merged, blanks (0)
    dropped; then spaces that start or end the text or follow another space are
    dropped, which is what joining the words with single spaces does.
    """

    def __init__(self, vocabulary: Vocabulary):
        encoded = [character.encode("utf-8") for character in vocabulary.tokens[1:]]
        self.width = max(len(code) for code in encoded)  # bytes of the longest character
        table = np.zeros((vocabulary.size, self.width), np.int32)
        for label, code in enumerate(encoded, 1):
            table[label, :len(code)] = list(code)
        self.bytes = table
        self.byte_counts = np.array([0] + [len(code) for code in encoded], np.int32)
        self.space = vocabulary.encode(" ")[0] if vocabulary.covers(" ") else -1

    def labels(self, logits, lengths):
        """-> (batch, frames) emitted label ids (zeros after), (batch,) label counts."""
        best, valid = _best_path(logits, lengths)
        previous = tf.pad(best[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
        return compact(best, valid & (best != 0) & (best != previous))

    def word_frames(self, logits, lengths):
        """-> (batch, words) first logit frame and end frame (last + 1) of each word, (batch,) word counts.

        As `asr.transcription.timestamps.words` on the greedy path: a word holds the frames of its
        characters, repeats included; space frames separate words, blanks do not.
        """
        best, valid = _best_path(logits, lengths)
        space = valid & (best == self.space)
        stretch = tf.cumsum(tf.cast(space, tf.int32), axis=1)  # space-separated stretch of each frame
        letter = valid & (best != 0) & ~space
        frames, count = compact(tf.broadcast_to(tf.range(tf.shape(best)[1]), tf.shape(best)), letter)
        stretches, _ = compact(stretch, letter)
        position = tf.range(tf.shape(best)[1])[None, :]
        inside = position < count[:, None]
        previous = tf.pad(stretches[:, :-1], [[0, 0], [1, 0]])
        following = tf.pad(stretches[:, 1:], [[0, 0], [0, 1]])
        first = inside & ((position == 0) | (stretches != previous))
        last = inside & ((position == count[:, None] - 1) | (stretches != following))
        starts, words = compact(frames, first)
        ends, _ = compact(frames + 1, last)
        width = tf.maximum(tf.reduce_max(words), 1)  # LiteRT cannot hand out an empty int32 slice
        return starts[:, :width], ends[:, :width], words

    def __call__(self, logits, lengths):
        """-> (batch, width) uint8 UTF-8 bytes, zero-padded, and (batch,) byte counts."""
        labels, counts = self.labels(logits, lengths)
        valid = tf.range(tf.shape(labels)[1])[None, :] < counts[:, None]
        space = valid & (labels == self.space)
        letter = tf.cast(valid & ~space, tf.int32)
        letters_before = tf.cumsum(letter, axis=1, exclusive=True) > 0
        letters_after = tf.cumsum(letter, axis=1, exclusive=True, reverse=True) > 0
        after_space = tf.pad(space[:, :-1], [[0, 0], [1, 0]])
        keep = (letter > 0) | (space & ~after_space & letters_before & letters_after)
        labels, counts = compact(labels, keep)
        code = tf.gather(self.bytes, labels)  # (batch, labels, width)
        used = tf.range(self.width)[None, None, :] < tf.gather(self.byte_counts, labels)[:, :, None]
        used &= (tf.range(tf.shape(labels)[1])[None, :] < counts[:, None])[:, :, None]
        batch = tf.shape(labels)[0]
        text, byte_counts = compact(tf.reshape(code, [batch, -1]), tf.reshape(used, [batch, -1]))
        return tf.cast(text[:, :tf.reduce_max(byte_counts)], tf.uint8), byte_counts


def _best_path(logits, lengths):
    """-> (batch, frames) argmax labels and the (batch, frames) mask of frames within each length."""
    best = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return best, tf.range(tf.shape(best)[1])[None, :] < lengths[:, None]


def bytes_to_strings(text, byte_counts):
    """(batch, width) uint8 bytes with counts -> (batch,) tf.string (TensorFlow only)."""
    singles = tf.constant([bytes([value]) for value in range(256)])
    pieces = tf.gather(singles, tf.cast(text, tf.int32))
    valid = tf.range(tf.shape(text)[1])[None, :] < byte_counts[:, None]
    return tf.strings.reduce_join(tf.where(valid, pieces, ""), axis=1)
