"""Export a trained model for serving: audio in, text out, as SavedModel, TFLite or ONNX.

The exported graph needs no asr code, librosa or Keras:

    audio          (batch, samples) float32  mono PCM at the model's rate (16 kHz), right-padded
    lengths        (batch,) int32            true samples per row
 -> text_bytes     (batch, width) uint8      UTF-8 transcript, zero-padded
    text_lengths   (batch,) int32            its bytes per row
    logits         (batch, frames, classes)  CTC logits, blank = class 0
    logit_lengths  (batch,) int32            true logit frames per row
    features       (batch, frames, size)     the model's input features (as `asr.features.extract`)
    feature_lengths (batch,) int32           true feature frames per row
    word_starts    (batch, words) int32      each word's first logit frame on the greedy path
    word_ends      (batch, words) int32      and its last + 1 (zero-padded to at least one column);
                                             seconds = frame · hop · subsampling / rate
    word_counts    (batch,) int32            words per row
    text           (batch,) string           SavedModel only (string tensors are TensorFlow's)

Features are computed in the graph (`asr.serving.LogMel`) and decoded greedily
(`asr.serving.GreedyText`), matching `asr transcribe` with the greedy decoder on
files it decodes in one piece (up to `--chunk-seconds`). The BiLSTM runs its
explicit path, since cuDNN kernels run neither in TFLite nor in ONNX.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr import fileio
from asr.errors import AsrError

FORMATS = ("saved_model", "tflite", "onnx")
FILES = {"tflite": "model.tflite", "onnx": "model.onnx"}  # a SavedModel is a folder of its own
ONNX_OPSET = 17


class ExportError(AsrError):
    """A model that cannot be exported in the requested format (one line, naming the output)."""


@dataclass(frozen=True)
class Exported:
    path: Path  # the SavedModel folder, or the .tflite / .onnx file
    format: str
    bytes: int  # on disk


def export(model, output, format: str = "saved_model", *, quantize: bool = False) -> Exported:
    """Write `model` (a SpeechRecognizer or a `.keras` path) as a self-contained graph under `output`.

    format: "saved_model" (`output` becomes the SavedModel folder, with a
    `serving_default` signature), "tflite" (`output/model.tflite`, TFLite builtin
    ops only; `quantize` stores weights as int8, dynamic-range quantization) or
    "onnx" (`output/model.onnx`, via tf2onnx, opset 17).
    """
    from asr.model import SpeechRecognizer, load_model

    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r} (expected one of {', '.join(FORMATS)})")
    if quantize and format != "tflite":
        raise ExportError("quantization is for the tflite format only")
    output = Path(output)
    if format == "saved_model" and output.exists() and any(output.iterdir()):
        raise ExportError(f"{output}: already exists and is not empty")
    if not isinstance(model, SpeechRecognizer):
        model = load_model(model)
    with _explicit_lstm(model):
        if format == "saved_model":
            path = _write_saved_model(model, output)
        else:
            output.mkdir(parents=True, exist_ok=True)
            path = output / FILES[format]
            data = _tflite(model, quantize) if format == "tflite" else _onnx(model)
            with fileio.atomic_open(path, "wb") as file:
                file.write(data)
    files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
    size = sum(f.stat().st_size for f in files)
    return Exported(path, format, size)


def serving_function(model, batch: int | None = None):
    """The numeric serving graph of `model` as a tf.function over (audio, lengths); see the module doc.

    batch: a fixed batch size, or None for any.
    """
    import tensorflow as tf

    from asr.serving import GreedyText, LogMel

    log_mel, greedy = LogMel(model.feature_config), GreedyText(model.vocabulary)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([batch, None], tf.float32, name="audio"),
                                                  tf.TensorSpec([batch], tf.int32, name="lengths")])
    def serve(audio, lengths):
        features, feature_lengths = log_mel(audio, lengths)
        logits = model({"features": features, "feature_lengths": feature_lengths}, training=False)
        logit_lengths = model.output_lengths(feature_lengths)
        text, text_lengths = greedy(logits, logit_lengths)
        word_starts, word_ends, word_counts = greedy.word_frames(logits, logit_lengths)
        return {"text_bytes": text, "text_lengths": text_lengths, "logits": logits,
                "logit_lengths": logit_lengths, "features": features, "feature_lengths": feature_lengths,
                "word_starts": word_starts, "word_ends": word_ends, "word_counts": word_counts}

    return serve


@contextlib.contextmanager
def _explicit_lstm(model):
    """Trace the BiLSTM layers' explicit path (no cuDNN kernel), restoring their choice afterwards."""
    fused = [layer.use_fused for layer in model.recurrent]
    for layer in model.recurrent:
        layer.use_fused = False
    try:
        yield
    finally:
        for layer, value in zip(model.recurrent, fused):
            layer.use_fused = value


def _write_saved_model(model, output: Path) -> Path:
    import tensorflow as tf

    from asr.serving import bytes_to_strings

    serve = serving_function(model)

    @tf.function(autograph=False, input_signature=serve.input_signature)
    def serving_default(audio, lengths):
        outputs = serve(audio, lengths)
        return {**outputs, "text": bytes_to_strings(outputs["text_bytes"], outputs["text_lengths"])}

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}."))
    try:
        _archive(model, serving_default, staging)  # then renamed: a reader never sees half a model
        os.replace(staging, output)
    except (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError) as error:
        # TensorFlow's writers raise these, not OSError, for a full disk or a read-only folder.
        raise ExportError(f"{output}: cannot be written ({error.message.splitlines()[0]})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already unless writing failed
    return output


def _archive(model, endpoint, output: Path) -> None:
    """A SavedModel of `endpoint` as its `serving_default` signature, with `model`'s variables."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", endpoint)
    archive.write_out(os.fspath(output), verbose=False)


def _tflite(model, quantize: bool) -> bytes:
    import tensorflow as tf

    # One utterance per call: TFLite lowers the LSTM loop's tensor lists only with a static batch.
    # Converting from a SavedModel freezes the weights (from a concrete function, the LSTM's
    # stay uninitialised resource variables).
    with tempfile.TemporaryDirectory() as folder:
        _archive(model, serving_function(model, batch=1), Path(folder))
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights, float activations
        return converter.convert()


def _onnx(model) -> bytes:
    try:
        import tf2onnx
    except ImportError:
        raise ExportError("ONNX export needs tf2onnx: pip install 'asr[export]'") from None
    serve = serving_function(model)
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature,
                                             opset=ONNX_OPSET)
    return proto.SerializeToString()


def texts(outputs: dict) -> list[str]:
    """The exported graph's text_bytes and text_lengths -> one string per row."""
    return [bytes(row[:n]).decode("utf-8") for row, n in zip(outputs["text_bytes"], outputs["text_lengths"])]


def load_exported(path):
    """An exported model as a function (audio, lengths) -> dict of NumPy outputs.

    path: a SavedModel folder (run by TensorFlow), a `.tflite` file (LiteRT) or an
    `.onnx` file (ONNX Runtime), or a folder holding one of those files.
    """
    path = Path(path)
    if path.is_dir() and not (path / "saved_model.pb").exists():
        path = next((path / name for name in FILES.values() if (path / name).exists()), path)
    if path.is_dir():
        import tensorflow as tf

        signature = tf.saved_model.load(os.fspath(path)).signatures["serving_default"]
        return lambda audio, lengths: {name: value.numpy() for name, value in signature(
            audio=tf.constant(audio), lengths=tf.constant(lengths)).items()}
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=os.fspath(path)).get_signature_runner()
        return lambda audio, lengths: _stack([runner(audio=audio[row:row + 1, :lengths[row]],
                                                     lengths=lengths[row:row + 1])
                                              for row in range(len(lengths))])
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        return lambda audio, lengths: dict(
            zip(names, session.run(None, {"audio": audio, "lengths": lengths})))
    raise ExportError(f"{path}: not an exported model (a SavedModel folder, .tflite or .onnx file)")


def _stack(rows: list[dict]) -> dict:
    """Outputs of single-row calls -> one batch, zero-padding text bytes and logits to the longest."""
    def pad(array, width):
        return np.pad(array, [(0, 0), (0, width - array.shape[1])] + [(0, 0)] * (array.ndim - 2))

    return {name: np.concatenate([pad(row[name], max(r[name].shape[1] for r in rows))
                                  if row[name].ndim > 1 else row[name] for row in rows])
            for name in rows[0]}
