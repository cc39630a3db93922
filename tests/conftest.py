"""Shared fixtures: the optional shared data folder and generated test audio."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import hypothesis
import numpy as np
import pytest
import soundfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# CI replays the same generated inputs on every run, so a red CI is always reproducible and
# never a new draw; runs without CI set (nightly `-m slow` ones too) draw fresh inputs.
hypothesis.settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (CI=true, set by the CI runner), a skipped `ci` test fails instead.

    `.ci/run` installs what these tests need (Chromium, kenlm, jax); a skip there
    would hide a broken install step behind a green run.
    """
    report = (yield).get_result()
    if report.skipped and os.environ.get("CI") and item.get_closest_marker("ci"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome, report.longrepr = "failed", f"CI must run this test, but it skipped: {reason}"


def make_tone(seconds: float = 0.5, sample_rate: int = 16000, frequency: float = 440.0,
              channels: int = 1, amplitude: float = 0.5, seed: int = 0) -> np.ndarray:
    """A sine with faint noise, shape (samples, channels), float32.

    Channel c is at `frequency * (c + 1)`, so tests can tell channels apart by
    their spectral peak.
    """
    time = np.arange(round(seconds * sample_rate)) / sample_rate
    noise = np.random.default_rng(seed).standard_normal((time.size, channels))
    sines = np.stack([np.sin(2 * np.pi * frequency * (c + 1) * time) for c in range(channels)], 1)
    return (amplitude * sines + 0.01 * noise).astype(np.float32)


def lose_an_interrupt() -> None:
    """Ctrl-C, caught and dropped, as native code that clears every exception does."""
    try:
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        pass


@pytest.fixture
def python_sigint():
    """SIGINT as an interactive shell gives it, here and to child processes: a shell's
    background job (`make test &`) starts with it ignored, and children inherit that."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data` next to the repository; skips when a clone does not have it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def tone():
    """`make_tone` itself, for tests that need the samples they wrote."""
    return make_tone


@pytest.fixture
def tone_wav(tmp_path):
    """Factory: write `make_tone(...)` to `tmp_path / name` with soundfile and return the path.

    `format` defaults to the one soundfile infers from the extension; `subtype`
    to that format's default when None.
    """

    def write(name: str = "tone.wav", *, seconds: float = 0.5, sample_rate: int = 16000,
              frequency: float = 440.0, channels: int = 1, subtype: str | None = "PCM_16",
              format: str | None = None, seed: int = 0) -> Path:
        path = tmp_path / name
        samples = make_tone(seconds, sample_rate, frequency, channels, seed=seed)
        soundfile.write(path, samples, sample_rate, subtype=subtype, format=format)
        return path

    return write


TINY_MODEL = ("model.conv_channels=4", "model.lstm_units=16", "model.lstm_layers=1",
              "model.dropout=0.0", "features.n_mels=40")


@pytest.fixture(scope="session")
def speech_corpus(tmp_path_factory) -> dict[str, Path]:
    """A tiny real-speech corpus synthesised with eSpeak NG: train/dev/test manifests."""
    from asr.corpora.synthetic import make_synthetic_corpus

    return make_synthetic_corpus(tmp_path_factory.mktemp("speech"), train_utterances=48,
                                 dev_utterances=8, test_utterances=8, workers=1)


@pytest.fixture(scope="session")
def trained_model(speech_corpus, tmp_path_factory) -> Path:
    """A tiny model trained for two epochs on `speech_corpus`; returns its `.keras` path."""
    from asr.config import load_config
    from asr.training.train import train

    config = load_config(None, [*TINY_MODEL, "train.epochs=2", "train.batch_size=16",
                                f"data.train_manifest={speech_corpus['train']}",
                                f"data.dev_manifest={speech_corpus['dev']}"])
    return train(config, tmp_path_factory.mktemp("run"), verbose=0).model_path
