import numpy as np
import pytest
import tensorflow as tf

from asr.augment import change_speed, spec_augment
from asr.config import AugmentConfig

MASKS = AugmentConfig(frequency_masks=2, frequency_mask_width=5, time_masks=3, time_mask_width=8,
                      time_mask_ratio=0.2)


def ones_batch(lengths, frames=60, bins=20):
    """Features of ones over each utterance's real frames, zero padding after."""
    features = np.zeros((len(lengths), frames, bins), np.float32)
    for row, length in enumerate(lengths):
        features[row, :length] = 1.0
    return tf.constant(features), tf.constant(lengths, tf.int32)


def augmented(lengths, seed=(1, 2), config=MASKS):
    features, lengths = ones_batch(lengths)
    return spec_augment(features, lengths, tf.constant(seed, tf.int64), config).numpy()


def test_no_masks_is_the_identity():
    features, lengths = ones_batch([60, 30])
    out = spec_augment(features, lengths, tf.constant([0, 0], tf.int64), AugmentConfig())
    np.testing.assert_array_equal(out.numpy(), features.numpy())


@pytest.mark.parametrize("seed", range(20))
def test_masks_stay_within_their_widths_and_the_real_frames(seed):
    lengths = [60, 25, 4]
    out = augmented(lengths, seed=(seed, 7))
    for row, length in enumerate(lengths):
        real = out[row, :length]
        assert not out[row, length:].any()  # padding untouched (still zero)
        masked_bins = np.flatnonzero(~real.any(axis=0))
        masked_frames = np.flatnonzero(~real.any(axis=1))
        # Two masks of at most 5 bins each; at least one bin survives in any row.
        assert len(masked_bins) <= 2 * 5
        widest = min(8, int(0.2 * length))
        assert len(masked_frames) <= 3 * widest
        kept = real[np.ix_(np.setdiff1d(np.arange(length), masked_frames),
                           np.setdiff1d(np.arange(20), masked_bins))]
        assert kept.all()  # only whole rows and columns are masked


def test_masks_are_drawn_from_the_seed_alone():
    first, again, other = (augmented([60, 40], seed) for seed in [(3, 4), (3, 4), (3, 5)])
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()
    assert (first == 0).sum() > (ones_batch([60, 40])[0].numpy() == 0).sum()  # something masked


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_change_speed_scales_length_and_pitch(tone, factor):
    samples = tone(seconds=1.0, frequency=440.0)[:, 0]
    faster = change_speed(samples, factor, 16000)
    assert len(faster) == pytest.approx(len(samples) / factor, abs=2)
    spectrum = np.abs(np.fft.rfft(faster))
    peak = np.argmax(spectrum) * 16000 / len(faster)
    assert peak == pytest.approx(440.0 * factor, abs=2.0)


def test_speed_one_is_untouched(tone):
    samples = tone(seconds=0.2)[:, 0]
    assert change_speed(samples, 1.0, 16000) is samples


# Waveform corruptions and the frequency warp.

from dataclasses import replace  # noqa: E402

import scipy.signal  # noqa: E402

from asr import augment  # noqa: E402
from asr.config import ConfigError, FeatureConfig  # noqa: E402

RATE = 16000
EVERYTHING = AugmentConfig(noise_probability=1.0, reverb_probability=1.0, telephone_probability=1.0,
                           gain_probability=1.0, vtlp_probability=1.0)


def speech_like(seconds=1.0, seed=0):
    """A 200 Hz buzz with harmonics to 4 kHz, at about -12 dBFS, with faint noise."""
    time = np.arange(int(seconds * RATE)) / RATE
    buzz = sum(np.sin(2 * np.pi * 200 * k * time) / k for k in range(1, 21))
    noise = np.random.default_rng(seed).standard_normal(time.size)
    return (0.1 * buzz + 0.001 * noise).astype(np.float32)


def band_power(samples, low, high):
    frequencies, power = scipy.signal.welch(samples, RATE, nperseg=1024)
    return power[(frequencies >= low) & (frequencies < high)].sum()


def test_corruptions_are_off_by_default():
    rng = np.random.default_rng(0)
    assert not augment.draw_corruption(rng, AugmentConfig())


@pytest.mark.parametrize("seed", range(3))
def test_corruption_is_drawn_from_the_seed_alone(seed):
    samples = speech_like()
    others = [speech_like(0.3, seed=1), speech_like(2.0, seed=2)]

    def corrupted(draw_seed):
        corruption = augment.draw_corruption(np.random.default_rng(draw_seed), EVERYTHING)
        return augment.corrupt(samples, corruption, RATE,
                               lambda rng: others[rng.integers(len(others))])

    first, again, other = corrupted([seed, 1]), corrupted([seed, 1]), corrupted([seed, 2])
    np.testing.assert_array_equal(first, again)
    assert first.shape == samples.shape and first.dtype == np.float32
    assert not np.allclose(first, other)


def test_probabilities_pick_each_corruption_that_often():
    config = AugmentConfig(noise_probability=0.3, reverb_probability=0.6)
    draws = [augment.draw_corruption(np.random.default_rng([5, n]), config) for n in range(2000)]
    assert np.mean([d.noise is not None for d in draws]) == pytest.approx(0.3, abs=0.04)
    assert np.mean([d.reverb is not None for d in draws]) == pytest.approx(0.6, abs=0.04)
    assert not any(d.telephone or d.gain_db is not None for d in draws)


def test_one_setting_does_not_shift_another_ones_draws():
    with_noise = augment.draw_corruption(np.random.default_rng(3), replace(EVERYTHING, noise_probability=0))
    everything = augment.draw_corruption(np.random.default_rng(3), EVERYTHING)
    assert with_noise.reverb == everything.reverb and with_noise.seed == everything.seed


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
def test_noise_is_added_at_the_requested_snr(kind, snr_db):
    samples = speech_like()
    noise = augment.coloured_noise(np.random.default_rng(0), samples.size, kind)
    noisy = augment.add_noise(samples, noise, snr_db)
    measured = 10 * np.log10(np.mean(samples.astype(np.float64)**2) / np.mean((noisy - samples)**2))
    assert measured == pytest.approx(snr_db, abs=0.01)


@pytest.mark.parametrize("kind, exponent", [("white", 0.0), ("pink", 1.0), ("brown", 2.0)])
def test_noise_colours_have_their_spectral_slope(kind, exponent):
    noise = augment.coloured_noise(np.random.default_rng(1), 4 * RATE, kind)
    frequencies, power = scipy.signal.welch(noise, RATE, nperseg=4096)
    band = (frequencies > 50) & (frequencies < 6000)
    slope = np.polyfit(np.log10(frequencies[band]), np.log10(power[band]), 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.15)


def test_babble_sums_other_utterances_looped_to_length():
    talker = np.ones(100, np.float32)
    total = augment.babble(np.random.default_rng(0), 250, lambda rng: talker, talkers=3)
    np.testing.assert_array_equal(total, np.full(250, 3.0))
    with pytest.raises(ValueError, match="other utterances"):
        augment.babble(np.random.default_rng(0), 250, None, talkers=3)


@pytest.mark.parametrize("rt60, drr_db", [(0.3, 0.0), (0.8, 10.0)])
def test_impulse_response_decays_in_rt60_with_its_direct_to_reverberant_ratio(rt60, drr_db):
    response = augment.room_impulse_response(np.random.default_rng(0), rt60, drr_db, RATE)
    assert response[0] == 1.0 and response.size == int(rt60 * RATE) + 1
    tail = response[1:]
    assert 10 * np.log10(1.0 / np.sum(tail**2)) == pytest.approx(drr_db, abs=1e-6)
    # Schroeder's backward integration: energy falls 60 dB over rt60 (fit from -5 to -25 dB).
    decay = 10 * np.log10(np.cumsum(tail[::-1]**2)[::-1] / np.sum(tail**2))
    time = np.arange(tail.size) / RATE
    fit = (decay < -5) & (decay > -25)
    assert -60 / np.polyfit(time[fit], decay[fit], 1)[0] == pytest.approx(rt60, rel=0.1)


def test_reverberation_keeps_length_and_level_and_smears_in_time():
    samples = np.zeros(RATE, np.float32)
    samples[:1600] = speech_like(0.1)
    response = augment.room_impulse_response(np.random.default_rng(0), 0.5, 0.0, RATE)
    wet = augment.reverberate(samples, response)
    assert wet.shape == samples.shape
    assert np.mean(wet**2) == pytest.approx(np.mean(samples**2), rel=1e-4)
    assert np.abs(wet[4000:]).max() > 0.01  # the room rings on after the sound stops


def test_silence_pads_each_edge_with_its_drawn_seconds():
    samples = speech_like()
    padded = augment.corrupt(samples, augment.Corruption(silence=(0.25, 0.5)), RATE)
    assert padded.shape == (RATE * 7 // 4,) and padded.dtype == np.float32
    assert not padded[:RATE // 4].any() and not padded[-RATE // 2:].any()
    np.testing.assert_array_equal(padded[RATE // 4:RATE * 5 // 4], samples)


def test_noise_level_is_set_by_the_speech_not_the_silence_around_it():
    samples = speech_like()
    corruption = augment.Corruption(silence=(1.0, 1.0), noise=("white", 10.0), seed=4)
    noisy = augment.corrupt(samples, corruption, RATE)
    speech, noise = noisy[RATE:2 * RATE], np.concatenate([noisy[:RATE], noisy[2 * RATE:]])
    snr_db = 10 * np.log10(np.mean(samples.astype(np.float64)**2) / np.mean((speech - samples)**2))
    assert snr_db == pytest.approx(10.0, abs=0.3)  # the noise's power over the speech's stretch only
    assert np.mean(noise**2) == pytest.approx(np.mean((speech - samples)**2), rel=0.1)  # and the margins


def test_silence_is_drawn_last_and_only_when_on():
    without = augment.draw_corruption(np.random.default_rng(3), EVERYTHING)
    settings = replace(EVERYTHING, silence_probability=0.5, silence_seconds=(0.2, 0.6))
    draws = [augment.draw_corruption(np.random.default_rng([3, n]), settings) for n in range(2000)]
    assert without.silence is None
    assert replace(augment.draw_corruption(np.random.default_rng(3), settings), silence=None) == without
    edges = np.array([draw.silence for draw in draws if draw.silence])
    assert len(edges) / len(draws) == pytest.approx(0.5, abs=0.04)
    assert edges.min() >= 0.2 and edges.max() <= 0.6 and edges[:, 0].std() > 0.1  # each edge its own


def test_silence_settings_are_recorded_only_when_on():
    assert not set(augment.SILENCE_SETTINGS) & augment.corruption_settings(EVERYTHING).keys()
    settings = augment.corruption_settings(replace(EVERYTHING, silence_probability=0.5))
    assert settings["silence_probability"] == 0.5 and settings["silence_seconds"] == [0.0, 1.0]


@pytest.mark.parametrize("seconds", [(-0.1, 1.0), (0.5, 0.2)])
def test_silence_seconds_must_be_a_range(seconds):
    with pytest.raises(ConfigError, match="silence_seconds"):
        AugmentConfig(silence_seconds=seconds)


def test_gain_scales_and_clips_at_full_scale():
    samples = np.array([0.0, 0.1, -0.2, 0.5, -0.9], np.float32)
    np.testing.assert_allclose(augment.apply_gain(samples, -20.0), samples / 10, rtol=1e-6)
    np.testing.assert_allclose(augment.apply_gain(samples, 20 * np.log10(4)),
                               [0.0, 0.4, -0.8, 1.0, -1.0], rtol=1e-6)


def test_telephone_keeps_the_voice_band_and_drops_the_rest():
    time = np.arange(RATE) / RATE
    tones = {frequency: (0.3 * np.sin(2 * np.pi * frequency * time)).astype(np.float32)
             for frequency in (100, 1000, 5000)}
    out = {frequency: augment.telephone(tone, RATE) for frequency, tone in tones.items()}
    assert all(o.shape == (RATE,) for o in out.values())
    kept = band_power(out[1000], 900, 1100) / band_power(tones[1000], 900, 1100)
    assert kept == pytest.approx(1.0, rel=0.1)
    assert band_power(out[5000], 0, 8000) < 1e-4 * band_power(tones[5000], 0, 8000)  # above 4 kHz: gone
    assert band_power(out[100], 0, 8000) < 0.05 * band_power(tones[100], 0, 8000)  # below 300 Hz


def test_frequency_warp_moves_spectral_content():
    config = FeatureConfig(n_mels=40)
    features = np.tile(np.arange(40, dtype=np.float32), (5, 1))  # each bin holds its index
    np.testing.assert_array_equal(augment.warp_frequencies(features, 1.0, config), features)
    stretched = augment.warp_frequencies(features, 1.1, config)  # bins read from higher frequencies
    squeezed = augment.warp_frequencies(features, 0.9, config)
    assert stretched.shape == features.shape
    assert (stretched[:, 5:30] > features[:, 5:30]).all() and (squeezed[:, 5:30] < features[:, 5:30]).all()
    for warped in (stretched, squeezed):  # fmax stays in place: the top bins move by under one
        assert warped[0, -1] == pytest.approx(39, abs=1) and warped.max() <= 39
    assert (np.diff(stretched[0]) >= 0).all()  # the warp is monotonic
    with pytest.raises(ConfigError, match="logmel"):
        augment.warp_frequencies(features, 1.1, FeatureConfig(kind="mfcc"))


def test_the_drawn_warp_is_seeded_and_off_by_default():
    config = FeatureConfig(n_mels=40)
    features = np.random.default_rng(0).standard_normal((20, 40)).astype(np.float32)
    assert augment.draw_augmentation(np.random.default_rng(0), AugmentConfig())[1] is None
    on = AugmentConfig(vtlp_probability=1.0)
    first, again = (augment.draw_augmentation(np.random.default_rng(4), on)[1] for _ in range(2))
    assert first == again and on.vtlp_warp[0] <= first <= on.vtlp_warp[1]
    assert not np.allclose(augment.warp_frequencies(features, first, config), features)


@pytest.mark.parametrize("spec, probability, values", [
    ("noise:10", "noise_probability", {"noise_snr_db": (10.0, 10.0), "noise_kinds": ("white", "pink", "brown")}),
    ("babble:5", "noise_probability", {"noise_kinds": ("babble",)}),
    ("reverb:0.5", "reverb_probability", {"reverb_rt60": (0.5, 0.5), "reverb_drr_db": (3.0, 3.0)}),
    ("reverb:0.5:6", "reverb_probability", {"reverb_drr_db": (6.0, 6.0)}),
    ("telephone", "telephone_probability", {}),
    ("gain:12", "gain_probability", {"gain_db": (12.0, 12.0)}),
    ("silence:1.5", "silence_probability", {"silence_seconds": (1.5, 1.5)}),
])
def test_perturbation_specs(spec, probability, values):
    config = augment.parse_perturbation(spec)
    assert getattr(config, probability) == 1.0
    assert all(getattr(config, key) == value for key, value in values.items())
    corruption = augment.draw_corruption(np.random.default_rng(0), config)
    assert [bool(corruption.reverb), bool(corruption.noise), corruption.gain_db is not None,
            corruption.telephone, bool(corruption.silence)].count(True) == 1


def test_perturbations_join_with_a_plus():
    config = augment.parse_perturbation("silence:0.5+noise:20")
    assert config == replace(augment.parse_perturbation("noise:20"), silence_probability=1.0,
                             silence_seconds=(0.5, 0.5))
    corruption = augment.draw_corruption(np.random.default_rng(0), config)
    assert corruption.silence == (0.5, 0.5) and corruption.noise[1] == 20.0


# The non-finite and huge ones had raised OverflowError tracebacks; noise:-1000 blamed a temporary file.
@pytest.mark.parametrize("spec", ["noise", "noise:loud", "hall:1", "telephone:8", "noise:nan", "noise:inf",
                                  "gain:1e308", "gain:-inf", "noise:-1000", "reverb:0", "reverb:-1",
                                  "reverb:nan", "silence", "silence:0", "silence:1:2", "noise:10+",
                                  "noise:10+babble:5", "telephone+telephone"])
def test_bad_perturbation_specs_are_named(spec):
    with pytest.raises(ConfigError, match="perturbation"):
        augment.parse_perturbation(spec)


def test_perturbed_utterances_point_at_corrupted_copies_and_rename_their_ids(tmp_path):
    import soundfile

    from asr.manifest import Utterance

    tone = np.sin(np.linspace(0, 300, 8000)).astype(np.float32) * 0.3
    soundfile.write(tmp_path / "a.wav", tone, 16000)
    utterances = [Utterance(str(tmp_path / "a.wav"), 0.5, "one"),
                  Utterance(str(tmp_path / "b.wav"), 1.0, "two", id="b")]
    noisy = augment.perturbed_utterances(utterances, augment.parse_perturbation("noise:0"),
                                         tmp_path / "copies", suffix="+noise:0")
    assert [(u.id, u.text, u.duration) for u in noisy] == [("a+noise:0", "one", 0.5),
                                                           ("b+noise:0", "two", 1.0)]
    corrupted, _ = soundfile.read(noisy[0].audio_filepath)
    assert corrupted.shape == tone.shape and not np.allclose(corrupted, tone, atol=0.05)
    assert noisy[1].audio_filepath == str(tmp_path / "b.wav")  # unreadable: kept, for transcription to report
    margins = augment.perturbed_utterances(utterances, augment.parse_perturbation("silence:0.25"),
                                           tmp_path / "margins")
    assert [u.duration for u in margins] == [1.0, 1.0]  # 0.5 s of speech and 0.25 s at each end; b kept
