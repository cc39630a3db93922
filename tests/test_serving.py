"""The serving graph's ops against their NumPy/librosa oracles in asr.features and asr.decoding.ctc."""

import numpy as np
import pytest
import tensorflow as tf

from asr import audio, features
from asr.config import FeatureConfig
from asr.decoding.ctc import greedy_decode
from asr.serving import GreedyText, LogMel, bytes_to_strings, compact
from asr.text import Vocabulary
from asr.transcription.timestamps import words

TOLERANCE = 1e-3  # max absolute difference in (standardised) log-mel


def run_log_mel(waveforms, config):
    """Batch the waveforms (right-padded with noise, which must be ignored) -> per-row features."""
    lengths = np.array([w.size for w in waveforms], np.int32)
    batch = np.random.default_rng(1).standard_normal((len(waveforms), lengths.max())).astype(np.float32)
    for row, waveform in zip(batch, waveforms):
        row[:waveform.size] = waveform
    values, frames = LogMel(config)(tf.constant(batch), tf.constant(lengths))
    return [v[:n] for v, n in zip(values.numpy(), frames.numpy())], values.numpy(), frames.numpy()


@pytest.mark.parametrize("config", [
    FeatureConfig(),
    FeatureConfig(n_mels=40, standardize="none"),
    FeatureConfig(kind="mfcc", n_mels=40),
    FeatureConfig(n_fft=400, win_length=400, hop_length=100, fmax=None),
    FeatureConfig(dynamic_range_db=40.0),
    FeatureConfig(dynamic_range_db=40.0, standardize="none"),
], ids=["logmel", "unnormalised", "mfcc", "n_fft=win_length", "dynamic-range", "dynamic-range-raw"])
def test_log_mel_matches_librosa_features_on_a_padded_batch(tone, config):
    waveforms = [tone(seconds, frequency=frequency, seed=seed)[:, 0]
                 for seconds, frequency, seed in [(0.5, 440.0, 0), (1.27, 1250.0, 1), (0.1, 300.0, 2)]]
    rows, padded, frames = run_log_mel(waveforms, config)
    for waveform, row in zip(waveforms, rows):
        expected = features.extract(waveform, config)
        assert row.shape == expected.shape
        assert np.abs(row - expected).max() < TOLERANCE
    assert np.all(padded[2, frames[2]:] == 0)  # past a row's frames: zeros, as padded_batch gives


def test_audio_shorter_than_one_fft_has_no_frames(tone):
    """As in asr.transcribe, which does not decode such scraps."""
    _, _, frames = run_log_mel([tone(0.02)[:, 0], tone(0.5)[:, 0]], FeatureConfig())
    assert frames.tolist() == [0, 51]


def test_log_mel_matches_librosa_on_every_real_world_format(shared_data):
    """Raw log-mel everywhere; standardised features in every bin that varies over the file.

    Upsampled narrow-band audio (8 kHz telephone speech) has bins with no energy,
    whose log-mel spread is a few float32 steps (< 1e-3); standardisation divides
    by that spread, so float32 rounding there decides O(0.1) differences in
    librosa itself (float32 against float64 input differ by as much).
    """
    files = sorted((shared_data / "realworld" / "formats").iterdir())
    assert files
    for path in files:
        waveform = audio.load_audio(path)
        for config in (FeatureConfig(standardize="none"), FeatureConfig()):
            (row,), _, _ = run_log_mel([waveform], config)
            expected = features.extract(waveform, config)
            varies = features.extract(waveform, FeatureConfig(standardize="none")).std(axis=0) > 1e-3
            difference = np.abs(row - expected)
            worst = difference.max() if config.standardize == "none" else difference[:, varies].max()
            assert worst < TOLERANCE, (path.name, config.standardize, worst)


def test_compact_moves_kept_values_to_the_front():
    values = tf.constant([[5, 6, 7, 8], [1, 2, 3, 4]])
    keep = tf.constant([[False, True, False, True], [True, True, True, True]])
    compacted, counts = compact(values, keep)
    assert compacted.numpy().tolist() == [[6, 8, 0, 0], [1, 2, 3, 4]]
    assert counts.numpy().tolist() == [2, 4]


@pytest.mark.parametrize("characters", [" 'abcdefghijklmnopqrstuvwxyz", "ab cé€"], ids=["ascii", "utf-8"])
def test_greedy_text_and_word_frames_are_the_decoder_and_its_word_times(characters):
    vocabulary = Vocabulary(characters)
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 40, vocabulary.size)).astype(np.float32)
    logits[:, :, vocabulary.encode(" ")[0]] += 1.5  # leading, trailing and repeated spaces
    logits[:, ::3, 0] += 3.0  # blanks between repeats
    lengths = np.array([40, 33, 1, 0, 17, 8], np.int32)
    text, byte_counts = GreedyText(vocabulary)(tf.constant(logits), tf.constant(lengths))
    strings = bytes_to_strings(text, byte_counts).numpy()
    for row, length in enumerate(lengths):
        expected = " ".join(vocabulary.decode(greedy_decode(logits[row], length)).split())
        assert bytes(text.numpy()[row, :byte_counts[row]]).decode("utf-8") == expected
        assert strings[row].decode("utf-8") == expected
    assert any("  " in vocabulary.decode(greedy_decode(row, n)) for row, n in zip(logits, lengths))

    starts, ends, counts = (t.numpy() for t in GreedyText(vocabulary).word_frames(tf.constant(logits),
                                                                                  tf.constant(lengths)))
    for row, length in enumerate(lengths):
        path = logits[row, :length].argmax(axis=-1)
        expected = words(path, logits[row, :length], vocabulary, seconds_per_frame=1.0)
        assert [(w.start, w.end) for w in expected] == list(zip(starts[row, :counts[row]], ends[row, :counts[row]]))
