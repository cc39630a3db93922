import gc
import json
import weakref
import zipfile

import keras
import numpy as np
import pytest

from asr.config import ConfigError, FeatureConfig, ModelConfig
from asr.model import ModelError, build_model, forward_function, load_model
from asr.text import Vocabulary

FEATURES = FeatureConfig(n_mels=16)
SMALL = ModelConfig(conv_channels=4, lstm_units=8, lstm_layers=2, dropout=0.0)


def inputs(features, lengths):
    return {"features": np.asarray(features, np.float32),
            "feature_lengths": np.asarray(lengths, np.int32)}


@pytest.mark.parametrize("subsampling", [1, 2, 4])
def test_logit_shape_and_lengths(subsampling):
    model = build_model(Vocabulary(), FEATURES, ModelConfig(**{**SMALL.__dict__, "subsampling": subsampling}))
    logits = model(inputs(np.zeros((2, 37, 16)), [37, 20]))
    assert logits.shape == (2, -(-37 // subsampling), Vocabulary().size)
    assert list(np.asarray(model.output_lengths(np.array([37, 20])))) == [-(-37 // subsampling),
                                                                        -(-20 // subsampling)]


def test_padded_batch_equals_each_utterance_alone():
    model = build_model(Vocabulary(), FEATURES, SMALL)
    rng = np.random.default_rng(0)
    lengths = [29, 13, 6]
    batch = np.zeros((3, 29, 16), np.float32)
    for row, length in enumerate(lengths):
        batch[row, :length] = rng.standard_normal((length, 16))
    together = np.asarray(model(inputs(batch, lengths)))
    for row, length in enumerate(lengths):
        alone = np.asarray(model(inputs(batch[row:row + 1, :length], [length])))
        frames = alone.shape[1]
        np.testing.assert_allclose(together[row, :frames], alone[0], atol=1e-5)


def test_forward_function_is_cached_without_keeping_the_model_alive():
    model = build_model(Vocabulary(), FEATURES, SMALL)
    forward = forward_function(model)
    assert forward_function(model) is forward
    batch = np.random.default_rng(0).standard_normal((1, 12, 16)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(forward(batch, np.array([12], np.int32))),
                               np.asarray(model(inputs(batch, [12]))), atol=1e-6)
    held = weakref.ref(model)
    del model, forward
    gc.collect()
    assert held() is None  # transcribe, tune and the dev callback each cache one


def test_ctc_loss_is_finite_and_trainable():
    model = build_model(Vocabulary(), FEATURES, SMALL)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    rng = np.random.default_rng(1)
    x = inputs(rng.standard_normal((4, 40, 16)), [40, 40, 32, 24])
    labels = np.array([[3, 4, 5], [6, 7, 0], [8, 0, 0], [9, 10, 11]], np.int32)
    y = {"labels": labels, "label_lengths": np.array([3, 2, 1, 3], np.int32)}
    first = model.train_on_batch(x, y)
    for _ in range(20):
        last = model.train_on_batch(x, y)
    assert np.isfinite(first) and last < first


def test_save_and_load_with_safe_mode(tmp_path):
    vocabulary = Vocabulary(" abc")
    model = build_model(vocabulary, FEATURES, SMALL)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    assert loaded.vocabulary == vocabulary
    assert loaded.feature_config == FEATURES
    assert loaded.model_config == SMALL
    x = inputs(np.random.default_rng(2).standard_normal((1, 20, 16)), [20])
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


def test_load_rejects_a_model_that_is_not_ours(tmp_path):
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    other.save(tmp_path / "other.keras")
    with pytest.raises(ModelError, match="not an asr model"):
        load_model(tmp_path / "other.keras")


def test_a_file_that_is_not_a_keras_model_says_so(tmp_path):
    """Keras itself calls a file of random bytes "File not found"."""
    noise = tmp_path / "noise.keras"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError, match=r"noise\.keras: not a Keras model file"):
        load_model(noise)
    with pytest.raises(ModelError, match=r"missing\.keras: no such file"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(ModelError, match="not a file"):
        load_model(tmp_path)


def damage_the_weights(path, damaged):
    """A copy of `path` whose weights member has bytes flipped (a bad CRC) or is cut short."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(damaged, "w") as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename.endswith(".h5"):
                target.writestr(member, data[:len(data) // 2])
            else:
                target.writestr(member, data)
    return damaged


def test_damaged_model_files_are_model_errors(tmp_path):
    """A flipped byte raised zipfile.BadZipFile, truncated weights h5py's OSError: tracebacks both."""
    build_model(Vocabulary(), FEATURES, SMALL).save(tmp_path / "model.keras")
    with pytest.raises(ModelError, match=r"truncated\.keras: cannot be loaded as a Keras model"):
        load_model(damage_the_weights(tmp_path / "model.keras", tmp_path / "truncated.keras"))
    data = bytearray((tmp_path / "model.keras").read_bytes())
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        weights = archive.getinfo("model.weights.h5")
    middle = weights.header_offset + 100 + weights.compress_size // 2
    data[middle:middle + 8] = bytes(255 - byte for byte in data[middle:middle + 8])
    (tmp_path / "flipped.keras").write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"flipped\.keras: cannot be loaded as a Keras model"):
        load_model(tmp_path / "flipped.keras")


def test_a_model_file_with_an_invalid_config_names_the_key(tmp_path):
    model = build_model(Vocabulary(), FEATURES, SMALL)
    model.save(tmp_path / "good.keras")
    with zipfile.ZipFile(tmp_path / "good.keras") as good, zipfile.ZipFile(tmp_path / "bad.keras", "w") as bad:
        for name in good.namelist():
            content = good.read(name)
            if name == "config.json":
                config = json.loads(content)
                config["config"]["model"]["subsampling"] = 3
                content = json.dumps(config)
            bad.writestr(name, content)
    with pytest.raises(ModelError, match=r"bad\.keras: holds an invalid asr model config "
                                         r"\(model\.subsampling: expected one of 1, 2, 4, got 3\)"):
        load_model(tmp_path / "bad.keras")


def test_unsupported_subsampling_is_rejected():
    with pytest.raises(ConfigError, match="subsampling: expected one of 1, 2, 4, got 3"):
        ModelConfig(subsampling=3)
