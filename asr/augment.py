"""Training-time augmentation: what differs between recordings in the world.

On the waveform: speed perturbation, silence at the edges, additive noise
(generated colours, or babble of other utterances), a generated room impulse
response, gain with clipping at full scale and a telephone channel (`corrupt`). On features:
vocal-tract-length perturbation (`warp_frequencies`) and SpecAugment masks.

All of it is deterministic given its inputs: the speed factor, the generator
for an utterance's corruptions and the mask seed all derive from the batch
sampler's (seed, epoch) plan, so a resumed run sees the same augmented batches
as an uninterrupted one. Every function but speed and edge silence keeps an
utterance's length, and the loader pads the batch after augmenting, so batch
padding is never augmented. `parse_perturbation` turns an evaluation spec
(`noise:10`, `reverb:0.5`, `telephone`, `silence:1+noise:30`) into a config
applying exactly those corruptions to every utterance, and `perturbed_copies`
writes the files so corrupted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import soundfile
import tensorflow as tf

from asr import audio
from asr.audio import resample
from asr.config import AugmentConfig, ConfigError, FeatureConfig, to_dict
from asr.manifest import Utterance

NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f^exponent
TELEPHONE_BAND = (300.0, 3400.0)  # Hz, the ITU-T G.712 pass band
TELEPHONE_RATE = 8000
MU = 255  # G.711 mu-law


# The AugmentConfig fields waveform corruptions are drawn with (`draw_corruption`).
CORRUPTION_SETTINGS = ("noise_probability", "noise_snr_db", "noise_kinds", "babble_talkers",
                       "reverb_probability", "reverb_rt60", "reverb_drr_db", "gain_probability",
                       "gain_db", "telephone_probability")
SILENCE_SETTINGS = ("silence_probability", "silence_seconds")


def corruption_settings(config: AugmentConfig) -> dict:
    """`config`'s CORRUPTION_SETTINGS as plain values (lists for tuples), as a store records them.

    SILENCE_SETTINGS join them only when edge silence is on, so that a store built
    before it existed still matches a config without it.
    """
    names = CORRUPTION_SETTINGS + (SILENCE_SETTINGS if config.silence_probability else ())
    return {name: value for name, value in to_dict(config).items() if name in names}


@dataclass(frozen=True)
class Corruption:
    """One utterance's drawn waveform corruptions; None (False) where one does not apply."""

    reverb: tuple[float, float] | None = None  # (rt60 seconds, direct-to-reverberant dB)
    noise: tuple[str, float] | None = None  # (kind, SNR dB)
    gain_db: float | None = None
    telephone: bool = False
    talkers: int = 0  # utterances summed into babble
    seed: int = 0  # for the noise samples, the impulse response and the babble talkers
    silence: tuple[float, float] | None = None  # seconds added (before, after)

    def __bool__(self) -> bool:
        return any((self.reverb, self.noise, self.gain_db is not None, self.telephone, self.silence))


def row_generators(seed, rows: int) -> list[np.random.Generator | None]:
    """A generator per batch row, seeded by (the batch's `seed`, (2,) ints, row); Nones without one."""
    if seed is None:
        return [None] * rows
    return [np.random.default_rng([*map(int, seed), row]) for row in range(rows)]


def draw_corruption(rng: np.random.Generator, config: AugmentConfig) -> Corruption:
    """Which corruptions apply to one utterance, with their settings, per `config`'s probabilities.

    The same draws are made whatever applies, so one setting never shifts
    another's randomness. Edge silence is drawn last and only when it is on, so
    that configs without it keep the draws they had before it existed.
    """
    applies = rng.random(4) < (config.reverb_probability, config.noise_probability,
                               config.gain_probability, config.telephone_probability)
    rt60, drr_db, snr_db, gain_db = (rng.uniform(*span) for span in (
        config.reverb_rt60, config.reverb_drr_db, config.noise_snr_db, config.gain_db))
    kinds = config.noise_kinds
    kind = kinds[rng.integers(len(kinds))] if kinds else None
    corruption = Corruption(reverb=(rt60, drr_db) if applies[0] else None,
                            noise=(kind, snr_db) if applies[1] and kind else None,
                            gain_db=gain_db if applies[2] else None, telephone=bool(applies[3]),
                            talkers=config.babble_talkers, seed=int(rng.integers(2**63)))
    if not config.silence_probability:
        return corruption
    silent, edges = rng.random() < config.silence_probability, rng.uniform(*config.silence_seconds, 2)
    return replace(corruption, silence=(float(edges[0]), float(edges[1]))) if silent else corruption


def draw_augmentation(rng: np.random.Generator,
                      config: AugmentConfig) -> tuple[Corruption, float | None]:
    """One utterance's waveform corruptions, then its frequency warp (None: not warped).

    Always drawn in this order, so features read from a store, whose corruptions
    cannot apply, are warped exactly as their audio's features would be; apply the
    warp with `warp_frequencies`.
    """
    corruption = draw_corruption(rng, config)
    if not config.vtlp_probability:
        return corruption, None
    applies, warp = rng.random() < config.vtlp_probability, rng.uniform(*config.vtlp_warp)
    return corruption, (warp if applies else None)


def corrupt(samples: np.ndarray, corruption: Corruption, sample_rate: int,
            other_speech: Callable[[np.random.Generator], np.ndarray] | None = None) -> np.ndarray:
    """Edge silence, room, noise, microphone level and channel, in the order sound meets them.

    samples: (samples,) float32; returns float32 of the same shape, or with
    corruption.silence seconds of zeros before and after it first (which the
    room and noise then fill). `other_speech(rng)` returns a random other
    utterance's samples, which babble sums.
    """
    rng = np.random.default_rng(corruption.seed)
    speech = slice(None)
    if corruption.silence:
        before, after = (round(seconds * sample_rate) for seconds in corruption.silence)
        speech = slice(before, before + samples.size)
        samples = np.pad(samples, (before, after))
    if corruption.reverb:
        samples = reverberate(samples, room_impulse_response(rng, *corruption.reverb, sample_rate))
    if corruption.noise:
        kind, snr_db = corruption.noise
        noise = (babble(rng, samples.size, other_speech, corruption.talkers) if kind == "babble"
                 else coloured_noise(rng, samples.size, kind))
        samples = add_noise(samples, noise, snr_db, speech)
    if corruption.gain_db is not None:
        samples = apply_gain(samples, corruption.gain_db)
    if corruption.telephone:
        samples = telephone(samples, sample_rate)
    return samples.astype(np.float32, copy=False)


def coloured_noise(rng: np.random.Generator, size: int, kind: str = "white") -> np.ndarray:
    """(size,) unit-power noise whose power spectrum falls as 1 / f^exponent (white 0, pink 1, brown 2)."""
    length = scipy.fft.next_fast_len(size, real=True)  # FFTs of awkward lengths are slow
    noise, exponent = rng.standard_normal(length), NOISE_EXPONENTS[kind]
    if exponent:  # white noise is white as drawn
        spectrum = np.fft.rfft(noise)
        frequencies = np.arange(spectrum.size, dtype=np.float64)
        frequencies[0] = frequencies[min(1, frequencies.size - 1)] or 1.0  # no infinite DC
        # Amplitude f^(-exponent/2) as a power of sqrt(f): numpy computes the powers 1 and 2
        # directly, and its general power took a quarter of this function's time.
        noise = np.fft.irfft(spectrum / np.sqrt(frequencies) ** exponent, n=length)
    noise = noise[:size]
    return noise / max(np.sqrt(np.mean(noise**2)), 1e-12)


def babble(rng: np.random.Generator, size: int,
           other_speech: Callable[[np.random.Generator], np.ndarray] | None,
           talkers: int) -> np.ndarray:
    """(size,) sum of `talkers` other utterances, each looped to `size` from a random start."""
    if other_speech is None:
        raise ValueError("babble noise needs other utterances to mix (other_speech)")
    total = np.zeros(size, np.float64)
    for _ in range(talkers):
        speech = other_speech(rng)
        start = rng.integers(speech.size)
        total += np.resize(np.roll(speech, -start), size)  # np.resize repeats a short array
    return total


def add_noise(samples: np.ndarray, noise: np.ndarray, snr_db: float,
              speech: slice = slice(None)) -> np.ndarray:
    """samples + noise scaled to `snr_db` below the mean power of samples[speech] (both (samples,)).

    `speech` is where the utterance lies when silence was added around it: the
    ratio is to the speech, whatever the margins.
    """
    signal_power = np.mean(np.square(samples[speech], dtype=np.float64))
    noise_power = max(np.mean(np.square(noise, dtype=np.float64)), 1e-20)
    return samples + noise * np.sqrt(signal_power / noise_power * 10 ** (-snr_db / 10))


def room_impulse_response(rng: np.random.Generator, rt60: float, drr_db: float,
                          sample_rate: int) -> np.ndarray:
    """A direct path followed by exponentially decaying Gaussian reverberation.

    The tail's energy decays by 60 dB in `rt60` seconds (Polack's statistical
    model) and lies `drr_db` below the direct path's. Shape (rt60 * rate + 1,).
    """
    length = max(1, int(rt60 * sample_rate))
    time = np.arange(1, length + 1) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-3 * np.log(10) * time / rt60)  # amplitude -60 dB at rt60
    tail *= np.sqrt(10 ** (-drr_db / 10) / max(np.sum(tail**2), 1e-20))
    return np.concatenate([[1.0], tail])


def reverberate(samples: np.ndarray, impulse_response: np.ndarray) -> np.ndarray:
    """Convolve with `impulse_response`, keep the first len(samples) samples and their RMS level."""
    wet = scipy.signal.fftconvolve(samples, impulse_response)[:samples.size]
    return wet * np.sqrt(np.mean(samples**2) / max(np.mean(wet**2), 1e-20))


def apply_gain(samples: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale by `gain_db` and clip at full scale, as a too-hot microphone preamp does."""
    return np.clip(samples * 10 ** (gain_db / 20), -1.0, 1.0)


def telephone(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """A narrow-band telephone channel: 300-3400 Hz band-pass, 8 kHz mu-law, back to `sample_rate`."""
    band = telephone_filter(sample_rate)
    narrow = resample(scipy.signal.sosfilt(band, samples).astype(np.float32), sample_rate,
                      TELEPHONE_RATE)
    peak = max(float(np.max(np.abs(narrow), initial=0.0)), 1e-9)  # the line's level is set to its peak
    coded = np.sign(narrow) * np.log1p(MU * np.abs(narrow / peak)) / np.log1p(MU)
    coded = np.round(coded * 127) / 127  # 8 bits
    narrow = peak * np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(MU)) / MU
    wide = resample(narrow.astype(np.float32), TELEPHONE_RATE, sample_rate)
    return np.pad(wide, (0, max(0, samples.size - wide.size)))[:samples.size]  # resampling may round


@functools.lru_cache(maxsize=8)
def telephone_filter(sample_rate: int) -> np.ndarray:
    """(4, 6) second-order sections of the 4th-order Butterworth telephone band-pass.

    Cached, and so shared by every call: designing the filter took longer than
    running it over an utterance.
    """
    return scipy.signal.butter(4, TELEPHONE_BAND, "bandpass", fs=sample_rate, output="sos")


def change_speed(samples: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """Play (samples,) audio `factor` times faster, as sox's `speed` effect does.

    Tempo and pitch change together; the output has about samples / factor samples.
    Resampling from sample_rate * factor to sample_rate is that change.
    """
    if factor == 1.0:
        return samples
    return resample(samples, round(sample_rate * factor), sample_rate)


def warp_frequencies(features: np.ndarray, warp: float, config: FeatureConfig) -> np.ndarray:
    """Vocal-tract-length perturbation (Jaitly & Hinton, 2013) of (frames, n_mels) log-mel features.

    Each bin takes the value at its centre frequency f warped to `warp * f`;
    above a boundary the warp bends to keep fmax in place, so no bin reads
    beyond the band. Values between bin centres are interpolated linearly.
    """
    if config.kind != "logmel":
        raise ConfigError(f"augment.vtlp_probability needs features.kind logmel, not {config.kind!r}")
    if warp == 1.0:
        return features
    fmax = config.fmax or config.sample_rate / 2
    centres = librosa.mel_frequencies(config.n_mels + 2, fmin=config.fmin, fmax=fmax)[1:-1]
    boundary = 0.8 * fmax * min(warp, 1.0) / warp  # as in Kaldi's VTLN: straight warp below
    source = np.where(centres <= boundary, warp * centres,
                      fmax - (fmax - warp * boundary) / (fmax - boundary) * (fmax - centres))
    position = np.interp(source, centres, np.arange(config.n_mels))
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, config.n_mels - 1)
    weight = (position - low).astype(np.float32)
    return features[:, low] * (1 - weight) + features[:, high] * weight


def spec_augment(features, lengths, seed, config: AugmentConfig):
    """SpecAugment (Park et al., 2019) frequency and time masks on a padded batch.

    features: (batch, frames, bins) float32; lengths: (batch,) int32 real frames;
    seed: (2,) int stateless seed. Returns features of the same shape with masked
    values set to zero, the mean of per-utterance standardised features. Time masks
    lie within each utterance's real frames, at most `time_mask_ratio` of them
    wide, so short utterances are not wiped out and padding is never counted.
    """
    batch, frames, bins = tf.unstack(tf.shape(features))
    frequency_seed, time_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    masked_bins = _masks(frequency_seed, config.frequency_masks,
                         widest=tf.fill([batch], tf.minimum(config.frequency_mask_width, bins)),
                         extent=tf.fill([batch], bins), size=bins)
    widest_time = tf.minimum(config.time_mask_width,
                             tf.cast(config.time_mask_ratio * tf.cast(lengths, tf.float32), tf.int32))
    masked_frames = _masks(time_seed, config.time_masks, widest=widest_time, extent=lengths,
                           size=frames)
    keep = tf.logical_not(masked_frames[:, :, None] | masked_bins[:, None, :])
    return features * tf.cast(keep, features.dtype)


def _masks(seed, count: int, widest, extent, size):
    """`count` spans per row, each of width U{0..widest} within [0, extent) -> (rows, size) bool."""
    rows = tf.shape(extent)[0]
    if count == 0:
        return tf.zeros([rows, size], tf.bool)
    draws = tf.random.stateless_uniform([rows, count, 2], seed)
    width = tf.cast(draws[..., 0] * tf.cast(widest[:, None] + 1, tf.float32), tf.int32)
    width = tf.minimum(width, widest[:, None])  # a draw of exactly 1.0 is possible in float32
    room = tf.maximum(extent[:, None] - width + 1, 1)
    start = tf.minimum(tf.cast(draws[..., 1] * tf.cast(room, tf.float32), tf.int32), room - 1)
    positions = tf.range(size)[None, None, :]
    inside = (positions >= start[..., None]) & (positions < (start + width)[..., None])
    return tf.reduce_any(inside, axis=1)


def parse_perturbation(spec: str) -> AugmentConfig:
    """An evaluation condition -> a config that applies exactly it to every utterance.

    `noise:SNR` (white, pink or brown noise, one per utterance), `babble:SNR`
    (other utterances of the same manifest), `reverb:RT60[:DRR]` (DRR 3 dB by
    default), `telephone`, `gain:DB` (clipped at full scale), `silence:SECONDS`
    (that much added before and after); dB and seconds within +-100. Several
    join with "+", each applied in `corrupt`'s order: `silence:1+noise:30` is a
    quiet room around a recording cut with a second to spare.
    """
    off = AugmentConfig(noise_kinds=())
    merged = {}
    for part in spec.split("+"):
        config = _parse_one(part, spec, off)
        changed = {field.name: getattr(config, field.name) for field in fields(config)
                   if getattr(config, field.name) != getattr(off, field.name)}
        if changed.keys() & merged.keys():
            raise ConfigError(f"perturbation {spec!r}: {part!r} repeats a corruption already given")
        merged.update(changed)
    return replace(off, **merged)


def _parse_one(part: str, spec: str, off: AugmentConfig) -> AugmentConfig:
    """One corruption of `spec` (`part`) -> a config applying it alone."""
    kind, _, argument = part.partition(":")
    values = argument.split(":") if argument else []
    try:
        numbers = [float(value) for value in values]
    except ValueError:
        raise ConfigError(f"perturbation {spec!r}: {argument!r} is not a number") from None
    # Levels in dB beyond +-100 make float32 audio all noise, all silence or infinite.
    if not all(-100 <= number <= 100 for number in numbers):
        raise ConfigError(f"perturbation {spec!r}: each number must lie in [-100, 100]")
    if kind in ("reverb", "silence") and numbers and not numbers[0] > 0:
        raise ConfigError(f"perturbation {spec!r}: {kind}'s seconds must be above 0")
    if kind in ("noise", "babble") and len(numbers) == 1:
        return replace(off, noise_probability=1.0, noise_snr_db=(numbers[0],) * 2,
                       noise_kinds=("babble",) if kind == "babble" else tuple(NOISE_EXPONENTS))
    if kind == "reverb" and len(numbers) in (1, 2):
        drr = numbers[1] if len(numbers) == 2 else 3.0
        return replace(off, reverb_probability=1.0, reverb_rt60=(numbers[0],) * 2,
                       reverb_drr_db=(drr, drr))
    if kind == "telephone" and not numbers:
        return replace(off, telephone_probability=1.0)
    if kind == "gain" and len(numbers) == 1:
        return replace(off, gain_probability=1.0, gain_db=(numbers[0],) * 2)
    if kind == "silence" and len(numbers) == 1:
        return replace(off, silence_probability=1.0, silence_seconds=(numbers[0],) * 2)
    raise ConfigError(f"perturbation {spec!r}: expected noise:SNR, babble:SNR, reverb:RT60[:DRR], "
                      "telephone, gain:DB or silence:SECONDS, joined by +")


def perturbed_copies(paths, config: AugmentConfig, folder, sample_rate: int = audio.SAMPLE_RATE,
                     seed: int = 0) -> list[str]:
    """Write each file corrupted per `config`'s corruptions to `folder/NNNNN.wav` (32-bit float).

    Returns the copies' paths; a file that cannot be read keeps its own path,
    so that transcription reports it. Utterance i draws its corruption from
    (seed, i); babble mixes other files of the list.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def load(path):
        try:
            return audio.load_audio(path, sample_rate)
        except audio.AudioError:
            return None

    def other_speech(rng):
        samples = load(paths[rng.integers(len(paths))])
        return np.zeros(1, np.float32) if samples is None else samples  # a bad file: silence

    copies = []
    for index, path in enumerate(paths):
        samples = load(path)
        if samples is None:
            copies.append(path)
            continue
        corruption = draw_corruption(np.random.default_rng([seed, index]), config)
        copy = folder / f"{index:05d}.wav"
        soundfile.write(copy, corrupt(samples, corruption, sample_rate, other_speech), sample_rate,
                        subtype="FLOAT")
        copies.append(str(copy))
    return copies


def perturbed_utterances(utterances: list[Utterance], config: AugmentConfig, folder,
                         sample_rate: int = audio.SAMPLE_RATE, suffix: str = "") -> list[Utterance]:
    """`utterances` with their audio replaced by `perturbed_copies`' and `suffix` after each id.

    A copy's duration is its own: edge silence lengthens it.
    """
    copies = perturbed_copies([u.audio_filepath for u in utterances], config, folder, sample_rate)
    return [replace(u, audio_filepath=copy, id=u.key + suffix,
                    duration=u.duration if copy == u.audio_filepath else soundfile.info(copy).duration)
            for u, copy in zip(utterances, copies)]
