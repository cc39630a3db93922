import librosa
import numpy as np
import pytest

from asr.config import ConfigError, FeatureConfig
from asr.features import LOG_FLOOR, extract, num_frames, power_spectrogram


@pytest.mark.parametrize("samples", [1, 159, 160, 400, 8000, 16159])
def test_logmel_shape_matches_num_frames(tone, samples):
    audio = tone(1.1)[:samples, 0]
    features = extract(audio)
    assert features.shape == (num_frames(samples), 80)
    assert features.dtype == np.float32


@pytest.mark.filterwarnings("ignore:n_fft=512 is too large")  # librosa, on the shortest inputs
@pytest.mark.parametrize("samples", [0, 1, 511, 512, 513, 16159])
def test_power_spectrogram_is_librosas(tone, samples):
    audio = tone(1.1)[:samples, 0]
    expected = np.abs(librosa.stft(audio, n_fft=512, hop_length=160, win_length=400)) ** 2
    np.testing.assert_allclose(power_spectrogram(audio), expected, rtol=1e-4,
                               atol=1e-6 * expected.max(initial=1.0))


def test_unstandardised_logmel_is_librosas(tone):
    config = FeatureConfig(standardize="none", fmax=3800.0)
    audio = tone(0.8, frequency=440.0)[:, 0]
    mel = librosa.feature.melspectrogram(y=audio, sr=16000, n_fft=512, hop_length=160, win_length=400,
                                         n_mels=80, fmin=20.0, fmax=3800.0)
    np.testing.assert_allclose(extract(audio, config), np.log(mel + LOG_FLOOR).T, atol=1e-3)


def test_utterance_standardisation(tone):
    features = extract(tone(1.0, frequency=300.0)[:, 0])
    assert np.all(np.isfinite(features))
    np.testing.assert_allclose(features.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(features.std(axis=0), 1.0, atol=1e-2)


def test_without_standardisation_the_tone_peaks_in_its_mel_band(tone):
    config = FeatureConfig(standardize="none")
    features = extract(tone(1.0, frequency=1000.0)[:, 0], config)
    centres = librosa.mel_frequencies(config.n_mels + 2, fmin=config.fmin, fmax=config.fmax)[1:-1]
    peak = features.mean(axis=0).argmax()
    assert centres[peak - 1] < 1000 < centres[peak + 1]
    assert features[:, peak].mean() > features[:, :5].mean() + 5  # log-power well above the noise


def test_silence_stays_finite_and_small():
    """Constant bins have zero variance; the floor and epsilon keep them near 0, not NaN."""
    features = extract(np.zeros(4000, np.float32))
    assert np.all(np.isfinite(features)) and np.abs(features).max() < 1


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_a_dynamic_range_makes_features_independent_of_the_level(tone, kind):
    audio = tone(1.0, frequency=440.0)[:, 0] * 0.5 + tone(1.0, seed=1)[:, 0] * 0.01  # tone over noise
    fixed, relative = FeatureConfig(kind=kind), FeatureConfig(kind=kind, dynamic_range_db=60.0)
    quieter = (audio * 10 ** (-40 / 20)).astype(np.float32)  # 40 dB down
    np.testing.assert_allclose(extract(quieter, relative), extract(audio, relative), atol=1e-3)
    assert np.abs(extract(quieter, fixed) - extract(audio, fixed)).max() > 0.1  # the fixed floor's effect


def test_the_dynamic_range_floors_log_mel_below_the_loudest_value(tone):
    config = FeatureConfig(standardize="none", dynamic_range_db=30.0)
    audio = tone(0.5, frequency=1000.0)[:, 0]
    audio[:4000] = 0.0  # digital silence before the tone
    features = extract(audio, config)
    assert features.min() == pytest.approx(features.max() - 3 * np.log(10), abs=1e-4)  # 30 dB = 3 in log10
    unfloored = extract(audio, FeatureConfig(standardize="none"))
    np.testing.assert_array_equal(features > features.min(), unfloored > features.min() + 1e-3)
    assert np.all(np.isfinite(extract(np.zeros(4000, np.float32), config)))


def test_the_dynamic_range_must_be_positive():
    with pytest.raises(ConfigError, match="dynamic_range_db: 0.0 is not a range in dB"):
        FeatureConfig(dynamic_range_db=0.0)


def test_mfcc_shape(tone):
    config = FeatureConfig(kind="mfcc", n_mfcc=13)
    features = extract(tone(0.5)[:, 0], config)
    assert config.size == 13
    assert features.shape == (num_frames(8000, config), 13)
    assert features.dtype == np.float32


def test_hop_length_sets_the_frame_rate(tone):
    config = FeatureConfig(hop_length=320, win_length=640, n_fft=1024, n_mels=40)
    assert extract(tone(1.0)[:, 0], config).shape == (num_frames(16000, config), 40) == (51, 40)


def test_unknown_kinds_are_refused_with_the_config():
    with pytest.raises(ConfigError, match="kind: expected one of 'logmel', 'mfcc', got 'pitch'"):
        FeatureConfig(kind="pitch")
    with pytest.raises(ConfigError, match="standardize: expected one of 'utterance', 'none'"):
        FeatureConfig(standardize="global")


def test_extraction_is_deterministic(tone):
    audio = tone(0.7, seed=3)[:, 0]
    np.testing.assert_array_equal(extract(audio), extract(audio.copy()))
