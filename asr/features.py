"""Log-mel (or MFCC) features with librosa, identical in training and inference."""

from __future__ import annotations

import librosa
import numpy as np

from asr.config import FeatureConfig

LOG_FLOOR = 1e-6  # keeps log() finite on digital silence
STANDARDIZE_EPSILON = 1e-5  # keeps the division finite on constant bins


def extract(audio: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Mono audio at `config.sample_rate` -> features of shape (frames, config.size), float32.

    frames = 1 + samples // hop_length (librosa's centred framing).
    """
    mel = librosa.feature.melspectrogram(
        y=audio,
        sr=config.sample_rate,
        n_fft=config.n_fft,
        win_length=config.win_length,
        hop_length=config.hop_length,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        power=2.0,
    )
    features = np.log(mel + LOG_FLOOR)
    if config.kind == "mfcc":
        features = librosa.feature.mfcc(S=features, n_mfcc=config.n_mfcc)
    features = features.T.astype(np.float32)
    return standardize(features) if config.standardize == "utterance" else features


def standardize(features: np.ndarray) -> np.ndarray:
    """(frames, bins) -> zero mean and unit variance over time in each bin (one utterance)."""
    mean = features.mean(axis=0, keepdims=True)
    std = features.std(axis=0, keepdims=True)
    return (features - mean) / (std + STANDARDIZE_EPSILON)


def num_frames(num_samples: int, config: FeatureConfig = FeatureConfig()) -> int:
    """Frames `extract` yields for `num_samples` samples."""
    return 1 + num_samples // config.hop_length
