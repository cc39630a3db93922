"""The acoustic model: conv subsampling, stacked BiLSTM, dense CTC logits.

One `.keras` file carries the weights, the vocabulary and the feature
configuration, so a saved model is all `transcribe` needs. Shapes:
features (batch, frames, feature_size) with true `feature_lengths` (batch,)
-> logits (batch, ceil(frames / subsampling), vocabulary.size).
"""

from __future__ import annotations

import math
import weakref
import zipfile
import zlib
from pathlib import Path

import keras
from keras import ops

from asr.config import ConfigError, FeatureConfig, ModelConfig, from_dict, to_dict
from asr.errors import AsrError, first_line
from asr.layers import bilstm_stack
from asr.sequences import reduce_lengths
from asr.text import Vocabulary


class ModelError(AsrError):
    """A file that is not a usable asr model, or a model that does not fit a config."""


@keras.saving.register_keras_serializable(package="asr")
class SpeechRecognizer(keras.Model):
    """CTC acoustic model. Call with {"features", "feature_lengths"}; returns logits."""

    def __init__(self, characters: str, features: dict, model: dict, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = Vocabulary(characters)
        self.feature_config = from_dict(FeatureConfig, features, "features.")
        self.model_config = from_dict(ModelConfig, model, "model.")
        config = self.model_config
        self.convolutions = [
            keras.layers.Conv2D(config.conv_channels, 3, strides=2, padding="valid",
                                activation="relu", name=f"conv_{i}")
            for i in range(int(math.log2(config.subsampling)))
        ]
        self.recurrent = bilstm_stack(
            units=config.lstm_units,
            num_layers=config.lstm_layers,
            dropout=config.dropout,
            projection_units=config.projection_units,
            layer_norm=config.layer_norm,
        )
        self.output_dropout = keras.layers.Dropout(config.dropout)
        # float32 logits under mixed precision too: softmax and CTC need the range.
        self.classifier = keras.layers.Dense(self.vocabulary.size, name="logits", dtype="float32")

    def call(self, inputs, training=None):
        features, lengths = inputs["features"], inputs["feature_lengths"]
        x = ops.expand_dims(features, -1)  # (batch, frames, bins, 1)
        for convolution in self.convolutions:
            # One zero frame on each side, whatever the batch's padded length
            # ("same" padding would shift windows with its parity), and zeroed
            # padding after each convolution, keep a batched utterance's output
            # identical to running it alone.
            x = convolution(ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))
            lengths = (lengths + 1) // 2
            x = x * _frame_mask(lengths, ops.shape(x)[1], x)
        batch, frames = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, frames, x.shape[2] * x.shape[3]))
        mask = ops.arange(frames)[None, :] < lengths[:, None]
        for layer in self.recurrent:
            x_in = x
            x = layer(x_in, mask=mask, training=training)
            mask = layer.compute_mask(x_in, mask)
        return self.classifier(self.output_dropout(x, training=training))

    def output_lengths(self, feature_lengths):
        """True logit frames per utterance: ceil(frames / subsampling)."""
        return reduce_lengths(feature_lengths, self.model_config.subsampling)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Mean CTC loss over the batch, with true logit and label lengths."""
        losses = ops.ctc_loss(
            y["labels"], y_pred, y["label_lengths"],
            self.output_lengths(x["feature_lengths"]), mask_index=0,
        )
        return ops.mean(losses) / _replicas_in_sync()

    def build(self, input_shape=None):
        # Variables depend only on the configs, so a dummy pass builds them;
        # this is also what loading a saved model calls.
        frames = 8 * self.model_config.subsampling
        self.call({"features": ops.zeros((1, frames, self.feature_config.size)),
                   "feature_lengths": ops.convert_to_tensor([frames], dtype="int32")})
        self.built = True

    def get_build_config(self):
        return {"input_shape": None}

    def build_from_config(self, config):
        self.build()

    def get_config(self):
        return {
            "name": self.name,
            "characters": self.vocabulary.characters,
            "features": to_dict(self.feature_config),
            "model": to_dict(self.model_config),
        }


def build_model(vocabulary: Vocabulary, feature_config: FeatureConfig,
                model_config: ModelConfig) -> SpeechRecognizer:
    model = SpeechRecognizer(vocabulary.characters, to_dict(feature_config), to_dict(model_config))
    model.build()
    return model


def load_model(path) -> SpeechRecognizer:
    """Load a `.keras` model with `safe_mode` on (no arbitrary code from the file).

    Raises ModelError naming the file when it is missing, is not a Keras model
    file, or holds something other than an asr model.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        with zipfile.ZipFile(path) as archive:
            is_keras = path.suffix == ".keras" and "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        is_keras = False
    if not is_keras:
        raise ModelError(f"{path}: not a Keras model file (a .keras zip archive with config.json)")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except ConfigError as error:
        raise ModelError(f"{path}: holds an invalid asr model config ({error})") from None
    # What Keras raises for content it cannot use, and zipfile, zlib and h5py for damaged bytes.
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ModelError(f"{path}: cannot be loaded as a Keras model ({first_line(error)})") from None
    if not isinstance(model, SpeechRecognizer):
        raise ModelError(f"{path}: not an asr model (found {type(model).__name__})")
    return model


def _replicas_in_sync() -> int:
    """Replicas whose gradients tf.distribute sums: each returns its share of the loss,
    as Keras's own losses do (and Keras multiplies the logged loss back). 1 elsewhere."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _frame_mask(lengths, frames, like):
    """(batch,) lengths -> (batch, frames, 1, 1) float mask in `like`'s dtype."""
    mask = ops.arange(frames)[None, :] < lengths[:, None]
    return ops.cast(mask, like.dtype)[:, :, None, None]


def forward_function(model: SpeechRecognizer):
    """The model in inference mode as one function for every batch size and length.

    (features (batch, frames, feature_size), feature_lengths (batch,)) -> logits.
    On TensorFlow it is traced once with open shapes: Keras's predict_on_batch
    traces again for each new input shape, which costs more than the model on
    short files. It is kept per model, and runs each whole batch on one device
    even under a distribution strategy.
    """
    if model in _FORWARD:
        return _FORWARD[model]
    held = weakref.ref(model)  # the cache's value must not keep its own key alive

    def forward(features, feature_lengths):
        return held()({"features": features, "feature_lengths": feature_lengths}, training=False)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        forward = tf.function(forward, input_signature=[
            tf.TensorSpec([None, None, model.feature_config.size], tf.float32),
            tf.TensorSpec([None], tf.int32)])
    _FORWARD[model] = forward
    return forward


_FORWARD = weakref.WeakKeyDictionary()  # model -> its forward function


def predict_logits(model: SpeechRecognizer, dataset):
    """Yield (logits (batch, frames, classes), true logit frames (batch,)) as NumPy per batch."""
    forward = forward_function(model)
    for inputs, *_ in dataset:
        logits = forward(inputs["features"], inputs["feature_lengths"])
        lengths = model.output_lengths(inputs["feature_lengths"])
        yield ops.convert_to_numpy(logits), ops.convert_to_numpy(lengths)
