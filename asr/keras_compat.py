"""Every use of Keras internals in asr, in one place.

Keras 3 has no public API for its backend recurrent loop and fused LSTM kernel
(what `keras.layers.LSTM` runs), and its `fit` fails under
`MultiWorkerMirroredStrategy` without two patches. tests/test_keras_compat.py
checks each of these against the installed Keras and fails naming the internal
that changed; pyproject.toml pins keras to TESTED_KERAS, so that an upgrade is a
deliberate change that reruns those tests.
"""

from __future__ import annotations

import keras
from keras import ops
from keras.src import backend as _backend  # the only import of keras.src in asr

TESTED_KERAS = "3.15.1"


def rnn(step, inputs, initial_states: list, mask=None):
    """The backend's recurrent loop, as `keras.layers.RNN` runs it.

    step(x_t (batch, features), states) -> (output_t, new states);
    inputs: (batch, time, features); mask: (batch, time) bool, where False
    steps carry the states over. Returns (outputs (batch, time, units), final states).
    """
    _, outputs, states = _backend.rnn(step, inputs, initial_states, mask=mask,
                                      input_length=inputs.shape[1])
    return outputs, states


def fused_lstm(inputs, initial_h, initial_c, mask, kernel, recurrent_kernel, bias):
    """The backend's fused LSTM kernel (cuDNN), as `keras.layers.LSTM` calls it.

    Gates i, f, c, o with tanh and sigmoid; inputs (batch, time, in).
    Returns (outputs (batch, time, units), [h, c]). Raises NotImplementedError
    where the backend has no kernel for this device or mask.
    """
    _, outputs, states = _backend.lstm(
        inputs, initial_h, initial_c, mask, kernel=kernel, recurrent_kernel=recurrent_kernel,
        bias=bias, activation=keras.activations.tanh,
        recurrent_activation=keras.activations.sigmoid, return_sequences=True)
    return outputs, states


def cudnn_available() -> bool:
    """Whether `fused_lstm` can run on cuDNN here (a GPU, and a backend that has the kernel)."""
    cudnn_ok = getattr(_backend, "cudnn_ok", None)  # backends without cuDNN lack it
    return bool(cudnn_ok and cudnn_ok(keras.activations.tanh, keras.activations.sigmoid, False, True))


def fit_under_multi_worker(model: keras.Model) -> None:
    """Work around two Keras 3 `fit` failures under MultiWorkerMirroredStrategy
    (keras-team/keras#20329, #20585), on this compiled, built model instance only.

    Before training, fit averages a data batch across workers to build the
    model symbolically (`Model._maybe_symbolic_build`), which fails for dict
    inputs: build the optimizer and skip that step. After each step, fit
    averages the logs across workers along axis 0, which scalars lack: give
    each log a length-1 axis, which that average then removes.
    """
    model.optimizer.build(model.trainable_variables)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    train_step = model.train_step
    model.train_step = lambda data: {name: ops.reshape(value, (1,))
                                     for name, value in train_step(data).items()}
