"""Batch transcription of files, folders and manifests with a trained model.

A file that cannot be used becomes a `Transcript` with an `error` (one line
naming the file and the reason) and the batch goes on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from asr import audio, features
from asr.decode import DecoderConfig
from asr.manifest import read_manifest
from asr.model import SpeechRecognizer, load_model, predict_logits

MANIFEST_SUFFIXES = (".jsonl", ".json")


@dataclass(frozen=True)
class Transcript:
    path: str
    text: str | None = None
    error: str | None = None
    duration: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def expand_inputs(inputs: Iterable) -> list[str]:
    """Files, folders (recursive; audio recognised by content) and JSONL manifests -> audio paths.

    Paths that do not exist are kept, so they are reported as failures rather than lost.
    """
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths += sorted(str(p) for p in item.rglob("*")
                            if p.is_file() and (audio.is_audio(p) or p.suffix.lower() in audio.RAW_EXTENSIONS))
        elif item.suffix.lower() in MANIFEST_SUFFIXES and item.is_file():
            paths += [u.audio_filepath for u in read_manifest(item)]
        else:
            paths.append(str(item))
    return paths


def transcribe(paths: Iterable, model: SpeechRecognizer | str | os.PathLike, *,
               batch_size: int = 16, decoder: DecoderConfig = DecoderConfig()) -> Iterator[Transcript]:
    """Transcribe audio files; yields one `Transcript` per path, failures included.

    Files are batched shortest-first to limit padding; results come in that order.
    `decoder` picks greedy or beam search (with optional LM and hotwords).
    """
    if not isinstance(model, SpeechRecognizer):
        model = load_model(model)
    decode = decoder.build(model.vocabulary).decode_batch
    readable = []
    for path in map(str, paths):
        try:
            readable.append((audio.duration(path), path))
        except audio.AudioError as error:
            yield Transcript(path, error=str(error))
    readable.sort()
    for batch in _batches(sorted_paths=[p for _, p in readable], model=model, batch_size=batch_size):
        yield from _decode(batch, model, decode)


def _batches(sorted_paths: list[str], model: SpeechRecognizer, batch_size: int):
    config = model.feature_config

    def load(path):
        try:
            samples = audio.load_audio(path.decode(), config.sample_rate)
        except audio.AudioError as error:
            return np.zeros((0, config.size), np.float32), str(error), np.float32(0)
        return features.extract(samples, config), "", np.float32(len(samples) / config.sample_rate)

    def to_tensors(path):
        feats, error, seconds = tf.numpy_function(load, [path], [tf.float32, tf.string, tf.float32])
        feats.set_shape([None, config.size])
        error.set_shape([])
        seconds.set_shape([])
        return ({"features": feats, "feature_lengths": tf.shape(feats)[0]},
                {"path": path, "error": error, "duration": seconds})

    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(sorted_paths, dtype=tf.string))
    dataset = dataset.map(to_tensors, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.padded_batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _decode(batch, model, decode) -> Iterator[Transcript]:
    inputs, info = batch
    if int(tf.reduce_max(inputs["feature_lengths"])) == 0:  # every file in the batch failed
        texts = [""] * len(info["path"])
    else:
        (logits, lengths), = predict_logits(model, [batch])
        texts = decode(logits, lengths)
    for text, path, error, seconds in zip(texts, info["path"].numpy(), info["error"].numpy(),
                                          info["duration"].numpy()):
        path, error = path.decode(), error.decode()
        if error:
            yield Transcript(path, error=error)
        else:
            yield Transcript(path, text=text, duration=round(float(seconds), 3))
