"""Long audio in bounded memory: read in blocks, resample as a stream, cut in pauses.

A file longer than `stream_above` seconds is never held whole: it is read in
blocks, each downmixed and fed through one streaming resampler (soxr keeps its
filter state across blocks, so the result equals resampling the whole file),
and the samples are cut into chunks of at most `max_seconds`. Each cut goes at
the quietest `PAUSE_SECONDS` window in the second half of the chunk, which in
speech is a pause between words, so no word is split and the chunks need no
overlap: chunk transcripts are simply concatenated, their word times shifted
by the chunk's offset. Shorter files are loaded whole, as in training, and cut
by the same rule when longer than `max_seconds`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import soundfile

from asr import audio
from asr.errors import first_line

MAX_SECONDS = 20.0  # the model trains on utterances of up to 20 s
STREAM_ABOVE_SECONDS = 60.0
BLOCK_SECONDS = 10.0
PAUSE_SECONDS = 0.2
FRAME_SECONDS = 0.01
SILENCE = 2.0 ** -15  # one 16-bit step: a chunk whose peak is below it is digital silence


@dataclass(frozen=True)
class Chunk:
    offset: int  # index of the first sample in the whole file, at the target rate
    samples: np.ndarray  # (samples,) float32 mono

    @property
    def silent(self) -> bool:
        return self.samples.size == 0 or float(np.abs(self.samples).max()) < SILENCE


def chunks(path, sample_rate: int = audio.SAMPLE_RATE, max_seconds: float | None = MAX_SECONDS,
           stream_above: float = STREAM_ABOVE_SECONDS) -> Iterator[Chunk]:
    """A file as chunks of at most `max_seconds` (None: one chunk, the whole file).

    Raises `audio.AudioError` subclasses, possibly after some chunks were yielded.
    """
    if max_seconds is None:
        yield Chunk(0, audio.load_audio(path, sample_rate))
        return
    if audio.duration(path) > stream_above:
        blocks = read_blocks(path, sample_rate)
    else:
        blocks = [audio.load_audio(path, sample_rate)]
    yield from split(blocks, sample_rate, max_seconds)


def read_blocks(path, sample_rate: int = audio.SAMPLE_RATE,
                block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Yield a file as float32 mono blocks at `sample_rate`, holding one block at a time.

    Blocks are validated as `audio.load_audio` validates whole files.
    """
    path = os.fspath(path)
    audio.duration(path)  # checks the file exists, is not empty and has a plausible rate
    resampler = None
    total = 0
    try:
        with audio.open_sound(path) as source:
            if source.samplerate != sample_rate:
                import soxr  # as in audio.resample: imported only when needed

                resampler = soxr.ResampleStream(source.samplerate, sample_rate, 1,
                                                dtype="float32", quality="HQ")
            for block in source.blocks(max(1, round(block_seconds * source.samplerate)),
                                       dtype="float32", always_2d=True):
                if not len(block):
                    continue
                total += len(block)
                mono = audio.prepare(block, source.samplerate, path, source.samplerate)
                yield mono if resampler is None else resampler.resample_chunk(mono)
    except soundfile.LibsndfileError as error:
        raise audio.UnreadableAudio(path, f"cannot be read ({error})") from None
    except (RuntimeError, ValueError, OSError) as error:
        raise audio.UnreadableAudio(path, f"cannot be read ({first_line(error)})") from None
    if total == 0:
        raise audio.EmptyAudio(path)
    if resampler is not None:
        yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def split(blocks: Iterable[np.ndarray], sample_rate: int,
          max_seconds: float = MAX_SECONDS) -> Iterator[Chunk]:
    """Cut consecutive sample blocks into chunks of max_seconds / 2 to max_seconds.

    Each cut is at the quietest pause in the second half of the chunk; the last
    chunk takes what remains.
    """
    longest = round(max_seconds * sample_rate)
    buffer, offset = np.zeros(0, np.float32), 0
    for block in blocks:
        buffer = np.concatenate([buffer, block]) if buffer.size else block
        while buffer.size > longest:
            cut = longest // 2 + quietest_point(buffer[longest // 2:longest], sample_rate)
            yield Chunk(offset, buffer[:cut])
            offset, buffer = offset + cut, buffer[cut:]
    if buffer.size:
        yield Chunk(offset, buffer)


def quietest_point(samples: np.ndarray, sample_rate: int) -> int:
    """Index of the middle of the lowest-energy PAUSE_SECONDS window of `samples`."""
    frame = max(1, round(FRAME_SECONDS * sample_rate))
    frames = samples.size // frame
    if frames == 0:
        return samples.size // 2
    energy = np.square(samples[:frames * frame].reshape(frames, frame), dtype=np.float64).mean(axis=1)
    width = min(frames, max(1, round(PAUSE_SECONDS / FRAME_SECONDS)))
    window_energy = np.convolve(energy, np.ones(width), mode="valid")
    return (int(window_energy.argmin()) * frame) + (width * frame) // 2
