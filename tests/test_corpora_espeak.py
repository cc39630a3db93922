import espeakng_loader
import librosa
import numpy as np
import pytest

from asr.corpora import espeak
from asr.corpora.espeak import EspeakError, EspeakUnavailable, Voice, synthesize, variants

TEXT = "the old man walks to the red house"


def median_pitch(audio: np.ndarray) -> float:
    """Median F0 in Hz over the loudest half of the frames (mostly vowels)."""
    f0 = librosa.yin(audio, fmin=60, fmax=400, sr=16000, frame_length=1024, hop_length=256)
    energy = librosa.feature.rms(y=audio, frame_length=1024, hop_length=256)[0][: f0.size]
    return float(np.median(f0[energy >= np.median(energy)]))


def test_synthesize_returns_16khz_float_speech():
    audio = synthesize(TEXT, Voice("en-us"))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 1.0 < audio.size / 16000 < 4.0
    assert np.all(np.abs(audio) <= 1.0)
    assert np.sqrt(np.mean(audio**2)) > 0.02


def test_sample_rate_sets_the_length():
    wide, narrow = synthesize(TEXT, Voice("en"), 16000), synthesize(TEXT, Voice("en"), 8000)
    assert narrow.size == pytest.approx(wide.size / 2, rel=0.02)


def test_female_variant_and_pitch_raise_the_voice():
    male = median_pitch(synthesize(TEXT, Voice("en-us+m1")))
    female = median_pitch(synthesize(TEXT, Voice("en-us+f3")))
    high = median_pitch(synthesize(TEXT, Voice("en-us+m1", pitch=90)))
    assert female > 1.4 * male
    assert high > 1.2 * male


def test_rate_sets_the_speed():
    slow = synthesize(TEXT, Voice("en", rate=100))
    fast = synthesize(TEXT, Voice("en", rate=300))
    assert fast.size < 0.6 * slow.size


def test_accents_differ():
    american, scottish = synthesize(TEXT, Voice("en-us")), synthesize(TEXT, Voice("en-gb-scotland"))
    assert american.size != scottish.size or not np.allclose(american, scottish)


def test_variants_lists_the_bundled_data():
    assert {"m1", "f3", "klatt"} <= set(variants())


@pytest.mark.parametrize("name, message", [("en+nosuchvariant", "no variant"),
                                           ("xx-nowhere", "no language voice")])
def test_unknown_voices_raise(name, message):
    with pytest.raises(EspeakError, match=message):
        synthesize(TEXT, Voice(name))


@pytest.mark.parametrize("fields", [{"rate": 20}, {"pitch": 120}, {"range": -1}, {"name": ""}])
def test_implausible_voices_are_rejected(fields):
    with pytest.raises(ValueError):
        Voice(**{"name": "en", **fields})


def test_empty_text_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        synthesize("  ", Voice("en"))


def test_missing_library_raises_a_typed_error(monkeypatch, tmp_path):
    missing = tmp_path / "libespeak-ng.so"
    monkeypatch.setattr(espeakng_loader, "get_library_path", lambda: str(missing))
    with pytest.raises(EspeakUnavailable, match="libespeak-ng.so"):
        espeak._Engine()
