"""Log-mel (or MFCC) features with librosa, identical in training and inference."""

from __future__ import annotations

import functools

import librosa
import numpy as np
import scipy.fft
import scipy.sparse

from asr.config import FeatureConfig

LOG_FLOOR = 1e-6  # keeps log() finite on digital silence
TINY = float(np.finfo(np.float32).tiny)  # with a dynamic range: log() stays finite on all-zero audio
STANDARDIZE_EPSILON = 1e-5  # keeps the division finite on constant bins


def extract(audio: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Mono audio at `config.sample_rate` -> features of shape (frames, config.size), float32.

    frames = 1 + samples // hop_length (librosa's centred framing).
    """
    # librosa.feature.melspectrogram's arithmetic, but the filters are applied as the
    # sparse matrix they are (each spans a few FFT bins): its np.einsum goes to
    # multi-threaded BLAS, which on a busy machine took 100x longer than the rest.
    power = power_spectrogram(audio, config)
    mel = _mel_basis(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax) @ power
    features = log_mel(mel, config.dynamic_range_db)
    if config.kind == "mfcc":
        features = librosa.feature.mfcc(S=features, n_mfcc=config.n_mfcc)
    features = features.T.astype(np.float32)
    return standardize(features) if config.standardize == "utterance" else features


def power_spectrogram(audio: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """(samples,) -> |STFT|^2 of shape (1 + n_fft // 2, 1 + samples // hop_length).

    librosa.stft's centred, zero-padded framing and Hann window, with the
    frames as a strided view and one scipy.fft call: librosa's own took twice
    as long, and training computes this afresh for every corrupted utterance.
    """
    padded = np.pad(audio.astype(np.float32, copy=False), config.n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, config.n_fft)[::config.hop_length]
    spectrum = scipy.fft.rfft(frames * _window(config.n_fft, config.win_length), axis=1)
    return (spectrum.real**2 + spectrum.imag**2).T


def log_mel(mel: np.ndarray, dynamic_range_db: float | None = None) -> np.ndarray:
    """log(mel power), floored at `dynamic_range_db` below the utterance's loudest value.

    Without a dynamic range the floor is the fixed LOG_FLOOR, log(mel + 1e-6), which
    sits at a different depth below the speech for each recording level: a
    recording 20 dB quieter loses its quiet detail to it. With one, scaling the
    audio by g adds the same 2·log(g) to every value, which the utterance
    standardisation then removes: the features do not depend on the level
    (Whisper floors its log-mel 80 dB below the peak the same way).
    """
    if dynamic_range_db is None:
        return np.log(mel + LOG_FLOOR)
    floor = max(float(mel.max(initial=0.0)) * 10 ** (-dynamic_range_db / 10), TINY)
    return np.log(np.maximum(mel, floor))


@functools.lru_cache(maxsize=8)
def _window(n_fft: int, win_length: int) -> np.ndarray:
    """(n_fft,) float32 periodic Hann window of `win_length`, zero-padded to n_fft at both ends."""
    window = librosa.filters.get_window("hann", win_length, fftbins=True)
    return librosa.util.pad_center(window, size=n_fft).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float,
               fmax: float | None) -> scipy.sparse.csr_array:
    """(n_mels, 1 + n_fft // 2) Slaney-normalised mel filters, as melspectrogram builds them."""
    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return scipy.sparse.csr_array(basis)


def standardize(features: np.ndarray) -> np.ndarray:
    """(frames, bins) -> zero mean and unit variance over time in each bin (one utterance)."""
    # In float64: a bin held at the dynamic range's floor is constant, and a float32 mean
    # one rounding step off it would come out as O(0.01) after dividing by the epsilon.
    mean = features.mean(axis=0, keepdims=True, dtype=np.float64)
    std = features.std(axis=0, keepdims=True, dtype=np.float64)
    return ((features - mean) / (std + STANDARDIZE_EPSILON)).astype(np.float32)


def num_frames(num_samples: int, config: FeatureConfig = FeatureConfig()) -> int:
    """Frames `extract` yields for `num_samples` samples."""
    return 1 + num_samples // config.hop_length
