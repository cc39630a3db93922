"""Each Keras internal that asr.keras_compat uses, checked against the installed Keras.

A failure here means Keras changed something asr relies on: read the message,
then update asr/keras_compat.py (and its TESTED_KERAS and the pin in
pyproject.toml) for the new version.
"""

import inspect
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from asr import keras_compat

ROOT = Path(__file__).resolve().parents[1]


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def assert_starts_with(function, names: list[str], where: str) -> None:
    found = parameters(function)
    assert found[:len(names)] == names, (
        f"Keras changed {where}: asr.keras_compat expects its parameters to begin with "
        f"{names}, Keras {keras.__version__} has {found}")


def test_keras_is_the_version_asr_is_tested_with_and_pyproject_pins_it():
    assert keras.__version__ == keras_compat.TESTED_KERAS, (
        f"Keras {keras.__version__} is installed; asr.keras_compat is tested with "
        f"{keras_compat.TESTED_KERAS}: run tests/test_keras_compat.py and update both")
    pins = re.findall(r'"keras==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pins == [keras_compat.TESTED_KERAS]


def test_no_other_module_imports_keras_internals():
    users = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "asr").rglob("*.py")
                   if "keras.src" in path.read_text(encoding="utf-8"))
    assert users == ["asr/keras_compat.py"]


def test_the_backend_recurrent_loop_steps_over_time_and_holds_states_past_the_mask():
    from keras.src import backend

    assert_starts_with(backend.rnn, ["step_function", "inputs", "initial_states", "go_backwards",
                                     "mask", "constants", "unroll", "input_length"],
                       "keras.src.backend.rnn")

    def running_sum(x_t, states):
        total = states[0] + x_t
        return total, [total]

    inputs = ops.convert_to_tensor(np.arange(1, 9, dtype="float32").reshape(2, 4, 1))
    mask = ops.convert_to_tensor([[True] * 4, [True, True, False, False]])
    outputs, (final,) = keras_compat.rnn(running_sum, inputs, [ops.zeros((2, 1))], mask=mask)
    np.testing.assert_allclose(ops.convert_to_numpy(outputs)[0, :, 0], [1, 3, 6, 10])
    np.testing.assert_allclose(ops.convert_to_numpy(outputs)[1, :2, 0], [5, 11])
    np.testing.assert_allclose(ops.convert_to_numpy(final)[:, 0], [10, 11])  # row 2: at its last step


def test_the_fused_lstm_kernel_matches_keras_lstm_or_declines_without_cudnn():
    from keras.src import backend

    assert_starts_with(backend.lstm, ["inputs", "initial_state_h", "initial_state_c", "mask",
                                      "kernel", "recurrent_kernel", "bias", "activation",
                                      "recurrent_activation", "return_sequences"],
                       "keras.src.backend.lstm")
    assert_starts_with(backend.cudnn_ok, ["activation", "recurrent_activation", "unroll", "use_bias"],
                       "keras.src.backend.cudnn_ok")
    assert isinstance(keras_compat.cudnn_available(), bool)
    reference = keras.layers.LSTM(3, return_sequences=True)
    inputs = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    expected = ops.convert_to_numpy(reference(inputs))
    zeros = ops.zeros((2, 3))
    kernel, recurrent_kernel, bias = reference.cell.kernel, reference.cell.recurrent_kernel, reference.cell.bias
    if not keras_compat.cudnn_available():
        with pytest.raises(NotImplementedError):
            keras_compat.fused_lstm(inputs, zeros, zeros, None, kernel, recurrent_kernel, bias)
        return
    outputs, (h, _) = keras_compat.fused_lstm(inputs, zeros, zeros, None, kernel, recurrent_kernel, bias)
    np.testing.assert_allclose(ops.convert_to_numpy(outputs), expected, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(h), expected[:, -1], atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a TensorFlow trainer patch")
def test_fit_still_builds_through_the_method_the_multi_worker_patch_replaces():
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    assert_starts_with(TensorFlowTrainer._maybe_symbolic_build, ["self", "iterator", "data_batch"],
                       "TensorFlowTrainer._maybe_symbolic_build")
    assert "self._maybe_symbolic_build(iterator=" in inspect.getsource(TensorFlowTrainer.fit), (
        "Keras's fit no longer calls _maybe_symbolic_build: "
        "asr.keras_compat.fit_under_multi_worker patches the wrong method")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    keras_compat.fit_under_multi_worker(model)
    assert model.optimizer.built
    logs = model.train_step((np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")))
    assert all(tuple(value.shape) == (1,) for value in logs.values())
