"""Log-mel (or MFCC) features with librosa, identical in training and inference."""

from __future__ import annotations

import functools

import librosa
import numpy as np
import scipy.sparse

from asr.config import FeatureConfig

LOG_FLOOR = 1e-6  # keeps log() finite on digital silence
STANDARDIZE_EPSILON = 1e-5  # keeps the division finite on constant bins


def extract(audio: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Mono audio at `config.sample_rate` -> features of shape (frames, config.size), float32.

    frames = 1 + samples // hop_length (librosa's centred framing).
    """
    # librosa.feature.melspectrogram's arithmetic, but the filters are applied as the
    # sparse matrix they are (each spans a few FFT bins): its np.einsum goes to
    # multi-threaded BLAS, which on a busy machine took 100x longer than the rest.
    power = np.abs(librosa.stft(audio, n_fft=config.n_fft, hop_length=config.hop_length,
                                win_length=config.win_length)) ** 2
    mel = _mel_basis(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax) @ power
    features = np.log(mel + LOG_FLOOR)
    if config.kind == "mfcc":
        features = librosa.feature.mfcc(S=features, n_mfcc=config.n_mfcc)
    features = features.T.astype(np.float32)
    return standardize(features) if config.standardize == "utterance" else features


@functools.lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float,
               fmax: float | None) -> scipy.sparse.csr_array:
    """(n_mels, 1 + n_fft // 2) Slaney-normalised mel filters, as melspectrogram builds them."""
    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return scipy.sparse.csr_array(basis)


def standardize(features: np.ndarray) -> np.ndarray:
    """(frames, bins) -> zero mean and unit variance over time in each bin (one utterance)."""
    mean = features.mean(axis=0, keepdims=True)
    std = features.std(axis=0, keepdims=True)
    return (features - mean) / (std + STANDARDIZE_EPSILON)


def num_frames(num_samples: int, config: FeatureConfig = FeatureConfig()) -> int:
    """Frames `extract` yields for `num_samples` samples."""
    return 1 + num_samples // config.hop_length
