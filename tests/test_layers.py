"""Tests for asr.layers: exactness on padded batches, agreement with Keras, serialization, training."""

import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from asr.layers import BidirectionalLSTM, bilstm_stack
from asr.sequences import reduce_lengths

FEATURES = 5
UNITS = 4
LENGTHS = (7, 3, 5)
STATE_NAMES = ("h_forward", "c_forward", "h_backward", "c_backward")


def padded_batch(lengths=LENGTHS, seed=0):
    """Random frames with garbage (not zeros) in the padding, and the matching mask."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((len(lengths), max(lengths), FEATURES)).astype("float32")
    mask = np.arange(max(lengths))[None, :] < np.asarray(lengths)[:, None]
    return x, mask


def randomize(layer, seed=1):
    """Weights far from their initial values, so gates and forget bias all matter."""
    rng = np.random.default_rng(seed)
    weights = [0.5 * rng.standard_normal(w.shape) + 0.1 for w in layer.get_weights()]
    layer.set_weights([w.astype("float32") for w in weights])
    return layer


def built(**kwargs):
    layer = BidirectionalLSTM(UNITS, **kwargs)
    layer.build((None, None, FEATURES))
    return randomize(layer)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def as_list(outputs):
    return [to_numpy(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


@pytest.mark.parametrize(
    "options",
    [{}, {"merge_mode": "sum"}, {"time_reduction": 2}],
    ids=["concat", "sum", "time_reduction"],
)
def test_fused_and_explicit_paths_agree(options):
    fused = built(implementation="fused", return_state=True, **options)
    explicit = BidirectionalLSTM(UNITS, implementation="explicit", return_state=True, **options)
    explicit.build((None, None, FEATURES))
    explicit.set_weights(fused.get_weights())
    x, mask = padded_batch()
    for call_mask in (None, mask):
        for a, b in zip(as_list(fused(x, mask=call_mask)), as_list(explicit(x, mask=call_mask))):
            np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("implementation", ["fused", "explicit"])
def test_matches_keras_bidirectional_lstm(implementation):
    reference = keras.layers.Bidirectional(keras.layers.LSTM(UNITS, return_sequences=True, return_state=True))
    reference.build((None, None, FEATURES))
    randomize(reference)
    layer = BidirectionalLSTM(UNITS, implementation=implementation, return_state=True)
    layer.build((None, None, FEATURES))
    layer.set_weights(reference.get_weights())  # same layout, same order
    x, mask = padded_batch()
    for call_mask in (None, mask):  # Keras skips masked steps, which is exact for right padding
        for name, a, b in zip(("outputs",) + STATE_NAMES, as_list(layer(x, mask=call_mask)),
                              as_list(reference(x, mask=call_mask))):
            np.testing.assert_allclose(a, b, atol=1e-5, err_msg=name)


@pytest.mark.parametrize(
    "options",
    [
        {"implementation": "fused"},
        {"implementation": "explicit"},
        {"implementation": "explicit", "projection_units": 3, "layer_norm": True, "time_reduction": 2},
    ],
    ids=["fused", "explicit", "explicit-projection-layer_norm-time_reduction"],
)
def test_padded_batch_matches_each_sequence_alone(options):
    layer = built(return_state=True, **options)
    x, mask = padded_batch()
    outputs, *states = as_list(layer(x, mask=mask))
    lengths = reduce_lengths(np.array(LENGTHS), layer.time_reduction)
    for row, (length, frames) in enumerate(zip(lengths, LENGTHS)):
        alone, *alone_states = as_list(layer(x[row : row + 1, :frames]))
        np.testing.assert_allclose(outputs[row, :length], alone[0], atol=1e-5)
        assert not outputs[row, length:].any(), "padded steps must output zeros"
        for name, state, alone_state in zip(STATE_NAMES, states, alone_states):
            np.testing.assert_allclose(state[row], alone_state[0], atol=1e-5, err_msg=name)


@pytest.mark.parametrize(
    "options, features",
    [
        ({}, 2 * UNITS),
        ({"merge_mode": "sum"}, UNITS),
        ({"projection_units": 3}, 6),
        ({"layer_norm": True, "projection_units": 3, "merge_mode": "sum"}, 3),
        ({"time_reduction": 3}, 2 * UNITS),
    ],
)
def test_output_and_mask_shapes(options, features):
    layer = BidirectionalLSTM(UNITS, return_state=True, **options)
    x, mask = padded_batch()
    outputs, h, c, _, _ = as_list(layer(x, mask=mask))
    steps = reduce_lengths(x.shape[1], layer.time_reduction)
    assert outputs.shape == (len(LENGTHS), steps, features)
    assert h.shape == (len(LENGTHS), layer.state_units) and c.shape == (len(LENGTHS), UNITS)
    assert [tuple(s) for s in layer.compute_output_shape(x.shape)] == [
        outputs.shape, h.shape, c.shape, h.shape, c.shape]
    assert to_numpy(layer.compute_mask(x, mask)[0]).shape == (len(LENGTHS), steps)


def test_get_config_round_trip_keeps_every_argument():
    options = dict(units=6, merge_mode="sum", dropout=0.25, projection_units=3, layer_norm=True,
                   time_reduction=2, return_state=True, implementation="explicit",
                   kernel_initializer="he_normal", recurrent_initializer="glorot_normal", seed=7)
    assert set(options) == set(inspect.signature(BidirectionalLSTM.__init__).parameters) - {"self", "kwargs"}
    config = BidirectionalLSTM(**options, name="encoder").get_config()
    for key in ("units", "merge_mode", "dropout", "projection_units", "layer_norm", "time_reduction",
                "return_state", "implementation", "seed"):
        assert config[key] == options[key]
    assert BidirectionalLSTM.from_config(config).get_config() == config


def test_save_and_load_with_safe_mode(tmp_path):
    features = keras.Input((None, FEATURES))
    mask = keras.Input((None,), dtype="bool")
    x, frame_mask = features, mask
    for layer in bilstm_stack(UNITS, 2, projection_units=3, layer_norm=True, time_reductions=(1, 2)):
        x, frame_mask = layer(x, mask=frame_mask), layer.compute_mask(x, frame_mask)
    model = keras.Model([features, mask], keras.layers.Dense(2)(x))
    randomize(model)
    inputs = list(padded_batch())
    path = tmp_path / "bilstm.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-6)


def test_keras_mask_propagation_matches_explicit_mask():
    x, mask = padded_batch()
    x = x * mask[:, :, None]  # padding of zeros for keras.layers.Masking
    layers = bilstm_stack(UNITS, 2, time_reductions=(2, 1))
    inputs = keras.Input((None, FEATURES))
    propagated = keras.layers.Masking()(inputs)
    for layer in layers:
        propagated = layer(propagated)
    model = keras.Model(inputs, propagated)
    threaded, frame_mask = x, mask
    for layer in layers:
        threaded, frame_mask = layer(threaded, mask=frame_mask), layer.compute_mask(threaded, frame_mask)
    np.testing.assert_allclose(to_numpy(model(x)), to_numpy(threaded), atol=1e-6)
    np.testing.assert_array_equal(to_numpy(frame_mask).sum(axis=1), reduce_lengths(np.array(LENGTHS), 2))


@pytest.mark.parametrize(
    "options",
    [
        {"implementation": "fused"},
        {"projection_units": 3, "layer_norm": True, "time_reduction": 2, "dropout": 0.1},
    ],
    ids=["fused", "explicit-all-options"],
)
def test_training_step_reduces_loss_and_updates_every_weight(options):
    inputs = keras.Input((None, FEATURES))
    layer = BidirectionalLSTM(UNITS, seed=0, **options)
    model = keras.Model(inputs, keras.layers.Dense(1)(layer(keras.layers.Masking()(inputs))))
    # TensorFlow traces a graph without XLA; jax runs uncompiled op by op unless jitted.
    jit = keras.backend.backend() == "jax"
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse", jit_compile=jit)
    x, mask = padded_batch()
    x = x * mask[:, :, None]
    target = np.ones((len(LENGTHS), reduce_lengths(x.shape[1], layer.time_reduction), 1), "float32")
    before = layer.get_weights()
    history = model.fit(x, target, batch_size=len(LENGTHS), epochs=8, verbose=0).history["loss"]
    assert history[-1] < 0.8 * history[0]
    for variable, start in zip(layer.weights, before):
        assert not np.allclose(to_numpy(variable), start), f"{variable.path} received no gradient"
    # Graph mode with another batch size and length: the traced step has None dims.
    steps = reduce_lengths(4, layer.time_reduction)
    model.train_on_batch(np.ones((2, 4, FEATURES), "float32"), np.ones((2, steps, 1), "float32"))


def test_dropout_only_in_training_and_padding_stays_zero():
    layer = built(dropout=0.5, seed=3)
    x, mask = padded_batch()
    np.testing.assert_array_equal(to_numpy(layer(x, mask=mask)), to_numpy(layer(x, mask=mask)))
    dropped = to_numpy(layer(x, mask=mask, training=True))
    assert not np.allclose(dropped, to_numpy(layer(x, mask=mask)))
    assert not dropped[1, LENGTHS[1]:].any()


def test_bilstm_stack_threads_mask_and_drops_between_layers_only():
    layers = bilstm_stack(UNITS, 3, dropout=0.2, time_reductions=(1, 2, 2), merge_mode="sum", seed=5)
    assert [layer.dropout for layer in layers] == [0.0, 0.2, 0.2]
    assert len({layer.name for layer in layers}) == 3
    x, mask = padded_batch()
    for layer in layers:
        x, mask = layer(x, mask=mask), layer.compute_mask(x, mask)
    assert to_numpy(x).shape == (len(LENGTHS), 2, UNITS)
    np.testing.assert_array_equal(to_numpy(mask).sum(axis=1), [2, 1, 2])
    with pytest.raises(ValueError, match="one factor per layer"):
        bilstm_stack(UNITS, 2, time_reductions=(2,))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"merge_mode": "mul"}, "merge_mode"),
        ({"implementation": "fused", "layer_norm": True}, "cannot apply"),
        ({"implementation": "cudnn"}, "implementation"),
        ({"time_reduction": 0}, "time_reduction"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_invalid_arguments_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        BidirectionalLSTM(UNITS, **options)


def test_benchmark_script_quick_run(capsys):
    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_layers.py"
    spec = importlib.util.spec_from_file_location("bench_layers", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--quick", "--padded", "--steps", "1"])
    table = capsys.readouterr().out
    for name in bench.PATHS:
        assert name in table


@pytest.mark.ci  # jax is in the dev extra
@pytest.mark.skipif(keras.backend.backend() == "jax", reason="this run is on the jax backend")
def test_layer_tests_pass_on_the_jax_backend():
    """The layer stays backend-neutral: this file and test_sequences again, on Keras's jax backend (CPU)."""
    pytest.importorskip("jax")
    # Without CI: the child skips this very test, which CI=true would turn into a failure.
    environment = {name: value for name, value in os.environ.items() if name != "CI"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, str(Path(__file__).with_name("test_sequences.py")),
         "-q", "-p", "no:cacheprovider", "-k", "not benchmark"],
        env={**environment, "KERAS_BACKEND": "jax"}, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "this run is on the jax backend" in result.stdout  # the child really ran on jax
