"""Batch transcription of audio files with a trained model, with word times.

Files are sorted by the duration their headers give, so a batch holds similar
lengths, and cut into chunks of at most `chunk_seconds` at pauses
(`asr.transcription.chunking`), so memory stays flat however long a file is. A `tf.data`
pipeline reads the chunks, computes features in parallel and prefetches them
while the model runs. The decoder gives the text with its alignment, from which
`asr.transcription.timestamps` times the words and rates their confidence.

A file that cannot be used becomes a `Transcript` with an `error` (one line
naming the file and the reason) and the run goes on. `file_timeout` limits the
seconds from starting to read a file to decoding its last chunk; it is checked
between the blocks a file is read in and after every batch. That bounds what
huge or slow files cost without a subprocess per file, which would cost more
than the model for short files; the price is that one system call that never
returns (say, on a hung network mount) is not interrupted.

TensorFlow and the model are imported only when `transcribe` runs, so that
`import asr` stays light.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from asr import audio
from asr.decoding.ctc import log_softmax
from asr.decoding.decoder_config import DecoderConfig
from asr.errors import UsageError, raise_if_interrupted
from asr.transcription import chunking, timestamps
from asr.transcription.timestamps import Word

if TYPE_CHECKING:
    from asr.model import SpeechRecognizer

log = logging.getLogger(__name__)
BATCH_SIZE = 16  # utterances (or chunks) run through the model together


@dataclass(frozen=True)
class Transcript:
    path: str
    text: str | None = None
    error: str | None = None
    duration: float | None = None  # seconds
    words: tuple[Word, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


def transcribe(paths: Iterable, model: SpeechRecognizer | str | os.PathLike, *,
               batch_size: int = BATCH_SIZE, decoder: DecoderConfig = DecoderConfig(),
               chunk_seconds: float | None = chunking.MAX_SECONDS,
               file_timeout: float | None = None) -> Iterator[Transcript]:
    """Transcribe audio files; yields one `Transcript` per path, failures included.

    Files whose header cannot be read come first, then the rest shortest-first.
    `decoder` picks greedy or beam search (with optional LM and hotwords);
    `chunk_seconds=None` decodes each file in one piece, however long.
    """
    from asr.model import SpeechRecognizer, load_model

    if batch_size < 1 or (chunk_seconds is not None and not 0 < chunk_seconds < math.inf):
        raise UsageError(f"batch size ({batch_size}) and chunk seconds ({chunk_seconds}) must be positive")
    if not isinstance(model, SpeechRecognizer):
        model = load_model(model)
    readable = []
    for path in map(os.fspath, paths):
        try:
            readable.append((audio.duration(path), path))
        except audio.AudioError as error:
            yield Transcript(path, error=str(error))
    readable.sort(key=lambda item: item[0])
    files = [path for _, path in readable]
    clock = _Clock(file_timeout)
    pieces = _dataset(files, model, batch_size, chunk_seconds, clock)
    for transcript in _decode(pieces, files, model, decoder, clock):
        yield transcript
        raise_if_interrupted()  # the caller has handled this one: a lost Ctrl-C stops here


@dataclass
class _Clock:
    """Per-file time limits, shared by the reading thread and the decoding loop."""

    limit: float | None
    started: dict[int, float] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)  # failed, timed out or done: no more work

    def expired(self, index: int) -> bool:
        return self.limit is not None and time.monotonic() - self.started[index] > self.limit

    def message(self, path: str) -> str:
        return f"{path}: took longer than the {self.limit:g} s limit per file"


def _pieces(files: list[str], sample_rate: int, chunk_seconds: float | None, clock: _Clock):
    """One dict per chunk, files in order; a failed file ends with one carrying its error.

    Digital silence is passed on without samples, as there is nothing to decode.
    """
    empty = chunking.Chunk(0, np.zeros(0, np.float32))

    def piece(index, chunk=empty, last=True, error=""):
        samples = empty.samples if chunk.silent else chunk.samples
        return {"index": index, "offset": chunk.offset, "samples": samples, "length": chunk.samples.size,
                "last": last, "error": error}

    for index, path in enumerate(files):
        clock.started[index] = time.monotonic()
        try:
            previous = None  # held back until the next one shows whether it is the last
            for chunk in chunking.chunks(path, sample_rate, chunk_seconds):
                if index in clock.finished:
                    break
                if clock.expired(index):
                    raise TimeoutError(clock.message(path))
                if previous is not None:
                    yield piece(index, previous, last=False)
                previous = chunk
            else:
                if previous is None:
                    raise audio.EmptyAudio(path)
                yield piece(index, previous)
        except (audio.AudioError, TimeoutError) as error:
            yield piece(index, error=str(error))
        except Exception as error:  # noqa: BLE001
            # Decoders of odd files raise whatever their authors chose: that file fails, the
            # batch goes on. The traceback stays in the log (`--verbose`), so a bug of ours shows.
            log.info("%s: unexpected %s while reading", path, type(error).__name__, exc_info=True)
            yield piece(index, error=f"{path}: cannot be read ({type(error).__name__}: {error})")


def _dataset(files, model, batch_size, chunk_seconds, clock):
    """Padded batches of chunk features: {"features", "feature_lengths", "index", "offset", ...}."""
    import tensorflow as tf

    from asr import features

    config = model.feature_config

    def extract(samples):
        if samples.size < config.n_fft:  # silence, or too short to hold a word
            return np.zeros((0, config.size), np.float32)
        return features.extract(samples, config)

    def add_features(piece):
        extracted = tf.numpy_function(extract, [piece.pop("samples")], tf.float32, stateful=False)
        extracted.set_shape([None, config.size])
        return {**piece, "features": extracted, "feature_lengths": tf.shape(extracted)[0]}

    signature = {"index": tf.TensorSpec((), tf.int32), "offset": tf.TensorSpec((), tf.int64),
                 "samples": tf.TensorSpec((None,), tf.float32), "length": tf.TensorSpec((), tf.int64),
                 "last": tf.TensorSpec((), tf.bool), "error": tf.TensorSpec((), tf.string)}
    dataset = tf.data.Dataset.from_generator(
        lambda: _pieces(files, config.sample_rate, chunk_seconds, clock), output_signature=signature)
    dataset = dataset.map(tf.autograph.experimental.do_not_convert(add_features),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Two batches ready while the model runs keep it busy; a fixed buffer keeps memory flat.
    return dataset.padded_batch(batch_size).prefetch(2)


def _decode(batches, files: list[str], model, decoder_config: DecoderConfig,
            clock: _Clock) -> Iterator[Transcript]:
    """Run the model on each batch and gather each file's words until its last chunk."""
    decoder = decoder_config.build(model.vocabulary)
    from asr.model import forward_function

    forward = forward_function(model)
    sample_rate = model.feature_config.sample_rate
    seconds_per_frame = model.feature_config.hop_length * model.model_config.subsampling / sample_rate
    words = {}  # file index -> words so far
    for batch in batches:
        feature_lengths = batch["feature_lengths"].numpy()
        if feature_lengths.max() > 0:
            log_probs = log_softmax(forward(batch["features"], batch["feature_lengths"]).numpy())
        frames = model.output_lengths(feature_lengths)
        rows = zip(batch["index"].numpy(), batch["offset"].numpy(), batch["length"].numpy(),
                   batch["last"].numpy(), batch["error"].numpy(), frames)
        for row, (index, offset, length, last, error, frame_count) in enumerate(rows):
            if index in clock.finished:
                continue
            path = files[index]
            if error:
                clock.finished.add(index)
                yield Transcript(path, error=error.decode())
                continue
            found = words.setdefault(index, [])
            if frame_count:
                chunk = log_probs[row, :frame_count]
                found += timestamps.words(decoder.decode(chunk).path, chunk, model.vocabulary,
                                          seconds_per_frame, int(offset) / sample_rate,
                                          int(length) / sample_rate)
            if clock.expired(index):
                clock.finished.add(index)
                yield Transcript(path, error=clock.message(path))
            elif last:
                clock.finished.add(index)
                yield Transcript(path, text=" ".join(word.text for word in found),
                                 duration=round(int(offset + length) / sample_rate, 3), words=tuple(found))
            if index in clock.finished:
                del words[index]

