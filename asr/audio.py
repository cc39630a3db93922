"""Load, validate, downmix and resample audio to the model's rate.

Every libsndfile format is read through soundfile; headerless PCM needs an
explicit `RawLayout`. Problems with a file raise `AudioError` subclasses whose
message names the file and the reason in one line, so callers can report a bad
file and go on with the rest of a batch.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from dataclasses import dataclass

import numpy as np
import soundfile

from asr.errors import AsrError, first_line

SAMPLE_RATE = 16000
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384000
RAW_EXTENSIONS = (".raw", ".pcm")
# Names that say "audio": a folder scan takes such a file even when it cannot be
# read, so that it is reported as a failure rather than skipped without a word.
AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".sph", ".nist",
                    ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64", ".voc",
                    *RAW_EXTENSIONS)
READ_BLOCK = 1 << 20  # samples per read (all channels): one block for most utterances


class AudioError(AsrError):
    """A file that cannot be used as speech audio."""

    reason = "invalid audio"

    def __init__(self, path, detail: str | None = None):
        self.path = os.fspath(path)
        self.detail = detail or self.reason
        super().__init__(f"{self.path}: {self.detail}")


class UnreadableAudio(AudioError):
    reason = "cannot be read"


class NotAudio(AudioError):
    reason = "not a recognised audio format"


class EmptyAudio(AudioError):
    reason = "contains no samples"


class NonFiniteAudio(AudioError):
    reason = "contains NaN or infinite samples"


class BadSampleRate(AudioError):
    reason = "has an implausible sample rate"


@dataclass(frozen=True)
class RawLayout:
    """Layout of headerless PCM: rate, channels, libsndfile subtype and byte order."""

    samplerate: int = SAMPLE_RATE
    channels: int = 1
    subtype: str = "PCM_16"
    endian: str = "LITTLE"


def raw_layout(path: str, raw: RawLayout | None = None) -> RawLayout | None:
    """`raw`, else the default layout for a headerless `.raw`/`.pcm` file; None for a file with a header."""
    if raw is None and path.lower().endswith(RAW_EXTENSIONS):
        return RawLayout()
    return raw


def soundfile_arguments(path: str, raw: RawLayout | None = None) -> dict:
    """soundfile's keyword arguments to open `path`: none for a header to read, else RAW and its layout."""
    raw = raw_layout(path, raw)
    return {} if raw is None else {"format": "RAW", **dataclasses.asdict(raw)}


def open_sound(path: str, raw: RawLayout | None = None) -> soundfile.SoundFile:
    """`path` opened by libsndfile, a headerless .raw/.pcm file in `raw`'s layout.

    The name goes as bytes: soundfile encodes a str name as strict UTF-8, which
    fails on names whose bytes are not UTF-8 (Python holds those as surrogates).
    """
    return soundfile.SoundFile(os.fsencode(path), **soundfile_arguments(path, raw))


def load_audio(
    path,
    sample_rate: int = SAMPLE_RATE,
    raw: RawLayout | None = None,
    channel: int | None = None,
) -> np.ndarray:
    """Read a file as float32 mono at `sample_rate`.

    Shape: (samples,). `channel=None` averages all channels; an integer keeps one.
    Files with a `.raw`/`.pcm` extension are read with `raw` (default: 16 kHz
    16-bit little-endian mono) since they carry no header to describe them.
    """
    data, source_rate = read_audio(path, raw)
    return prepare(data, source_rate, path, sample_rate, channel)


def read_audio(path, raw: RawLayout | None = None) -> tuple[np.ndarray, int]:
    """Read samples as float32 of shape (samples, channels), with their rate."""
    path = os.fspath(path)
    _check_file(path)
    try:
        with open_sound(path, raw) as file:
            _check_rate(path, file.samplerate)
            return _read_blocks(file), file.samplerate
    except soundfile.LibsndfileError as error:
        raise NotAudio(path, f"not a recognised audio format ({_short(error)})") from None
    except (RuntimeError, ValueError, OSError) as error:
        raise UnreadableAudio(path, f"cannot be read ({_short(error)})") from None


def _read_blocks(file: soundfile.SoundFile) -> np.ndarray:
    """All frames actually present, (samples, channels): the header's frame count can lie
    (a FLAC header may claim 2^36 samples), so it bounds no allocation."""
    blocks, frames = [], max(1, READ_BLOCK // file.channels)
    while len(block := file.read(frames, dtype="float32", always_2d=True)):
        blocks.append(block)
    if len(blocks) == 1:
        return blocks[0]
    return np.concatenate(blocks) if blocks else np.zeros((0, file.channels), np.float32)


def prepare(data: np.ndarray, source_rate: int, path, sample_rate: int = SAMPLE_RATE,
            channel: int | None = None) -> np.ndarray:
    """Validate (samples, channels) audio, downmix it and resample it to `sample_rate`."""
    path = os.fspath(path)
    _check_rate(path, source_rate)
    if data.shape[0] == 0:
        raise EmptyAudio(path)
    if not np.all(np.isfinite(data)):
        raise NonFiniteAudio(path)
    audio = resample(downmix(data, channel, path), source_rate, sample_rate)
    if audio.size == 0:
        raise EmptyAudio(path, f"is shorter than one sample at {sample_rate} Hz")
    return audio


def downmix(data: np.ndarray, channel: int | None = None, path="<audio>") -> np.ndarray:
    """(samples, channels) -> (samples,): the mean of channels, or one channel."""
    if channel is None:
        return data.mean(axis=1, dtype=np.float32)
    if not 0 <= channel < data.shape[1]:
        raise AudioError(path, f"has no channel {channel} (it has {data.shape[1]})")
    return np.ascontiguousarray(data[:, channel])


def resample(audio: np.ndarray, source_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling (soxr, high quality); a no-op at the same rate."""
    if source_rate == target_rate:
        return audio.astype(np.float32, copy=False)
    import soxr  # librosa's own resampling backend; imported late to keep start-up light

    return soxr.resample(audio, source_rate, target_rate, quality="HQ").astype(np.float32)


def duration(path, raw: RawLayout | None = None) -> float:
    """Length in seconds from the header alone (raw files: from the byte count)."""
    path = os.fspath(path)
    _check_file(path)
    raw = raw_layout(path, raw)
    if raw is not None:
        width = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4,
                 "FLOAT": 4, "DOUBLE": 8}[raw.subtype]
        return os.path.getsize(path) / (width * raw.channels * raw.samplerate)
    try:
        with open_sound(path) as file:
            rate, frames = file.samplerate, file.frames
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise NotAudio(path, f"not a recognised audio format ({_short(error)})") from None
    _check_rate(path, rate)
    return frames / rate


def is_audio(path) -> bool:
    """True when libsndfile recognises the file's content, whatever its extension.

    Raises OSError when the file cannot be opened at all (missing, no permission),
    since that says nothing about whether it holds audio.
    """
    path = os.fspath(path)
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device: opening it could wait forever
        return False
    with open(path, "rb"):
        pass
    try:
        with open_sound(path):
            return True
    except soundfile.LibsndfileError:  # libsndfile knows no format that fits the content
        return False


def _check_file(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a FIFO or device: a read could wait forever
            raise UnreadableAudio(path, "cannot be read (not a regular file)")
        with open(path, "rb") as file:  # a folder: open() says so
            empty = not file.read(1)
    except FileNotFoundError:
        raise UnreadableAudio(path, "no such file") from None
    except OSError as error:
        raise UnreadableAudio(path, f"cannot be read ({error.strerror or error})") from None
    if empty:
        raise EmptyAudio(path, "file is empty (0 bytes)")


def _check_rate(path, rate: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise BadSampleRate(path, f"has an implausible sample rate ({rate} Hz)")


def _short(error: Exception) -> str:
    text = first_line(error)
    return text.split(": ", 1)[-1] if text.startswith(("Error opening", "Error")) else text
