"""Training: resuming a killed run, stopping on divergence, schedules, fine-tuning, distribution."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import soundfile
import tensorflow as tf

from asr.config import ConfigError, FeatureConfig, ModelConfig, TrainConfig, load_config
from asr.manifest import Utterance, write_manifest
from asr.model import ModelError, build_model, load_model
from asr.text import Vocabulary
from asr.training.callbacks import TrainingDiverged
from asr.training.store import build_store
from asr.training.train import copy_weights, optimizer, precision_policy, set_intra_op_threads, train
from conftest import TINY_MODEL, make_tone

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "zero")


def write_tone_corpus(folder: Path, count: int, seed: int = 0) -> Path:
    """`count` tones of 0.3-0.6 s, each 'transcribed' as a digit word; returns the manifest."""
    rng = np.random.default_rng(seed)
    utterances = []
    for index in range(count):
        seconds = float(rng.uniform(0.3, 0.6))
        path = folder / f"u{index:03d}.wav"
        soundfile.write(path, make_tone(seconds, frequency=200 + 50 * index, seed=index), 16000)
        utterances.append(Utterance(str(path), seconds, WORDS[index % 10], id=f"u{index:03d}"))
    write_manifest(utterances, folder / "train.jsonl")
    return folder / "train.jsonl"


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    return write_tone_corpus(tmp_path_factory.mktemp("tones"), 24)


@pytest.fixture(scope="module")
def tone_store(tones) -> Path:
    """The tones' features in a store of three shards (the features of TINY_MODEL)."""
    build_store(tones, tones.parent / "store", load_config(None, TINY_MODEL).features,
                shard_size=8, jobs=1)
    return tones.parent / "store"


def overrides(manifest, *extra):
    return [*TINY_MODEL, "train.batch_size=2", "train.epochs=2", "train.bucket_boundaries=[]",
            f"data.train_manifest={manifest}", f"data.dev_manifest={manifest}", *extra]


def weights_in(path: Path) -> dict[str, np.ndarray]:
    """Every array in a Keras HDF5 weights file (or the one inside a .keras zip), by path."""
    arrays = {}
    if path.suffix == ".keras":
        import zipfile
        with zipfile.ZipFile(path) as archive:
            path = Path(archive.extract("model.weights.h5", path.parent / (path.stem + "-unzipped")))
    with h5py.File(path) as weights:
        weights.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                           if isinstance(item, h5py.Dataset) else None)
    return arrays


def newest_backup(run: Path) -> Path:
    return sorted((run / "backup").glob("*.weights.h5"))[-1]


def cli_train(run: Path, manifest: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "asr.cli", "train", "--output", str(run), "--config",
            str(ROOT / "configs" / "demo.yaml"), *overrides(manifest, *extra)]


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(tones, tone_store, tmp_path):
    """The killed run reads the feature store, the uninterrupted one the audio: the
    store's features are those of the audio, so both end with the same weights."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}

    def start(run: Path) -> subprocess.Popen:
        log = open(tmp_path / f"{run.name}.log", "a")  # a file: a full pipe would block the run
        source = [f"data.train_store={tone_store}"] if run.name == "killed" else []
        command = cli_train(run, tones, "train.deterministic=true", "train.backup_steps=1", *source)
        return subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=log)

    def errors(run: Path) -> str:
        return (tmp_path / f"{run.name}.log").read_text()[-2000:]

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = start(whole)
    try:
        process = start(killed)
        trigger = killed / "backup" / "00001-0000002.json"  # second epoch, two batches in
        while not trigger.exists() and process.poll() is None:
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL, errors(killed)
        state = json.loads(sorted((killed / "backup").glob("*.json"))[-1].read_text())
        assert state["epoch"] == 1 and 2 <= state["step"] < 12  # killed mid-epoch

        assert start(killed).wait(timeout=300) == 0, errors(killed)
        assert uninterrupted.wait(timeout=300) == 0, errors(whole)
    finally:
        uninterrupted.kill()
    assert len(json.loads((killed / "history.json").read_text())["loss"]) == 2
    for run in (whole, killed):
        state = json.loads(sorted((run / "backup").glob("*.json"))[-1].read_text())
        assert (state["epoch"], state["step"]) == (2, 0)
    for file in (newest_backup, lambda run: run / "model.keras"):
        expected, resumed = weights_in(file(whole)), weights_in(file(killed))
        assert expected.keys() == resumed.keys() and len(expected) > 4
        for name in expected:
            np.testing.assert_array_equal(resumed[name], expected[name], err_msg=name)


def test_a_diverging_run_stops_and_names_the_batch(tmp_path):
    manifest = write_tone_corpus(tmp_path, 8)
    lines = manifest.read_text().splitlines()
    infeasible = {**json.loads(lines[0]), "text": "far too many letters", "id": "long"}
    manifest.write_text("\n".join([*lines, json.dumps(infeasible)]) + "\n")
    config = load_config(None, overrides(manifest, "train.learning_rate=1e30", "train.max_loss=1e3"))
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch \d+: loss .*utterances: u0\d\d"):
        train(config, tmp_path / "run", verbose=0)
    dropped = json.loads((tmp_path / "run" / "dropped.json").read_text())
    assert dropped == {"train": {"transcript too long for its audio": 1},
                       "dev": {"transcript too long for its audio": 1}}


def test_fine_tuning_copies_all_but_a_new_output_layer():
    features = FeatureConfig(n_mels=16)
    model_config = ModelConfig(conv_channels=4, lstm_units=8, lstm_layers=1, dropout=0.0)
    source = build_model(Vocabulary(), features, model_config)
    same = build_model(Vocabulary(), features, model_config)
    copy_weights(source, same)
    for old, new in zip(source.weights, same.weights):
        np.testing.assert_array_equal(np.asarray(old), np.asarray(new))
    letters = build_model(Vocabulary("abc"), features, model_config)
    copy_weights(source, letters)
    assert letters.classifier.kernel.shape[-1] == 4
    for old, new in zip(source.layers[:-1], letters.layers[:-1]):
        for a, b in zip(old.get_weights(), new.get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelError, match=r"other features \(features.n_mels\)"):
        copy_weights(source, build_model(Vocabulary(), FeatureConfig(n_mels=20), model_config))
    wider = ModelConfig(conv_channels=4, lstm_units=12, lstm_layers=1, dropout=0.0)
    with pytest.raises(ModelError, match="model section must match"):
        copy_weights(source, build_model(Vocabulary(), features, wider))


def test_init_from_on_the_command_line(tones, tmp_path):
    from asr.cli import main

    source = tmp_path / "source.keras"
    config = load_config(None, overrides(tones))
    build_model(Vocabulary(), config.features, config.model).save(source)
    assert main(["train", "--config", str(ROOT / "configs" / "demo.yaml"), "--output",
                 str(tmp_path / "run"), "--init-from", str(source), "--characters", " efghinorstuvwxz",
                 *overrides(tones, "train.epochs=1")]) == 0
    assert load_model(tmp_path / "run" / "model.keras").vocabulary == Vocabulary(" efghinorstuvwxz")


def test_weight_decay_shrinks_kernels_by_the_rate_times_the_decay_and_leaves_biases():
    # With zero gradients Adam's own step is 0, so only the decoupled decay moves a weight.
    config = TrainConfig(learning_rate=0.01, weight_decay=0.5)
    kernel = keras.Variable(np.full((2, 3), 2.0, np.float32), name="forward_kernel")
    bias = keras.Variable(np.ones(3, np.float32), name="forward_bias")
    gamma = keras.Variable(np.ones(3, np.float32), name="cell_gamma")
    adam = optimizer(config, steps_per_epoch=10)
    adam.apply_gradients([(np.zeros(v.shape, np.float32), v) for v in (kernel, bias, gamma)])
    np.testing.assert_allclose(kernel.numpy(), 2.0 * (1 - 0.01 * 0.5), rtol=1e-6)
    np.testing.assert_array_equal(bias.numpy(), 1.0)
    np.testing.assert_array_equal(gamma.numpy(), 1.0)
    no_decay = keras.Variable(np.full((2, 3), 2.0, np.float32), name="kernel")
    optimizer(TrainConfig(learning_rate=0.01), 10).apply_gradients([(np.zeros((2, 3), np.float32), no_decay)])
    np.testing.assert_array_equal(no_decay.numpy(), 2.0)


def test_negative_weight_decay_is_refused():
    with pytest.raises(ConfigError, match="weight_decay"):
        TrainConfig(weight_decay=-0.1)


def test_mixed_precision_is_ignored_without_a_gpu(caplog):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with precision_policy(True):
        assert keras.mixed_precision.dtype_policy().name == "float32"
    assert "needs a GPU" in caplog.text


def test_intra_op_threads_are_set_before_tensorflow_starts_and_kept_after(caplog):
    script = ("from asr.training.train import set_intra_op_threads; set_intra_op_threads(1); "
              "import tensorflow as tf; tf.constant(1.0) + 1; "
              "print(tf.config.threading.get_intra_op_parallelism_threads())")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.split()[-1] == "1"
    tf.constant(1.0) + 1  # this process has started TensorFlow
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    set_intra_op_threads(threads + 3)
    assert tf.config.threading.get_intra_op_parallelism_threads() == threads
    assert f"intra_op_threads {threads + 3} not applied" in caplog.text


def test_mixed_float16_gets_loss_scaling_and_float32_logits():
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model(Vocabulary(), FeatureConfig(n_mels=16),
                            ModelConfig(conv_channels=4, lstm_units=8, lstm_layers=1, dropout=0.0))
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        x = {"features": np.random.default_rng(0).standard_normal((2, 40, 16)).astype("float32"),
             "feature_lengths": np.array([40, 30], np.int32)}
        y = {"labels": np.array([[1, 2], [3, 0]], np.int32), "label_lengths": np.array([2, 1], np.int32)}
        assert model(x).dtype == "float32"
        assert np.isfinite(model.train_on_batch(x, y))
    finally:
        keras.mixed_precision.set_global_policy(previous)


MIRRORED = """
import logging, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
logging.basicConfig(level=logging.INFO)
from asr.config import load_config
from asr.training.train import train
for strategy in ("default", "mirrored"):
    config = load_config(None, [*sys.argv[2:], f"train.strategy={strategy}"])
    train(config, f"{sys.argv[1]}/{strategy}", verbose=0)
"""


def test_mirrored_strategy_on_two_logical_cpus_matches_one_device(tones, tmp_path):
    """Each replica returns its share of the loss, so two replicas of 2 step like one of 4.

    (Clipping is off: Keras clips each replica's share of the gradient before summing.)
    """
    run = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path),
                          *overrides(tones, "train.epochs=1", "train.batch_size=4",
                                    "train.clipnorm=1e9")],
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "training on 2 replica(s) with MirroredStrategy" in run.stderr
    losses = [json.loads((tmp_path / run / "history.json").read_text())["loss"]
              for run in ("default", "mirrored")]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)  # not twice as large
    one, two = (weights_in(newest_backup(tmp_path / run)) for run in ("default", "mirrored"))
    assert one.keys() == two.keys()
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_multi_worker_strategy_with_two_local_workers(tones, tone_store, tmp_path):
    """Two CPU workers on this machine, as two hosts would run them with TF_CONFIG.

    Each reads from the store only its half of each batch.
    """
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("localhost", 0))
            ports.append(probe.getsockname()[1])
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    python, module, cli, *arguments = cli_train(
        tmp_path / "run", tones, "train.strategy=multi_worker", "train.epochs=1",
        "train.batch_size=4", f"data.train_store={tone_store}")
    workers = [subprocess.Popen(
        [python, module, cli, "--verbose", *arguments],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
             "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE) for index in range(2)]
    loaded = []
    try:
        for worker in workers:
            _, errors = worker.communicate(timeout=300)
            assert worker.returncode == 0, errors.decode()[-3000:]
            loaded += re.findall(r"this worker loaded (\d+) training utterance", errors.decode())
    finally:  # a worker left alone waits for its peer forever
        for worker in workers:
            worker.kill()
    chief, other = weights_in(newest_backup(tmp_path / "run")), weights_in(
        newest_backup(tmp_path / "run" / "worker-1"))
    for name in chief:  # synchronous training: the workers end with the same weights
        np.testing.assert_array_equal(other[name], chief[name], err_msg=name)
    assert (tmp_path / "run" / "model.keras").is_file()
    assert loaded == ["12", "12"]  # 24 utterances in an epoch, each worker's half of each batch


def test_trains_on_weighted_corpora_with_waveform_augmentation(tones, tmp_path):
    other = write_tone_corpus(tmp_path, 6, seed=1)
    config = load_config(ROOT / "configs" / "demo.yaml", overrides(
        tones, "train.epochs=1", f"data.train_manifest=[{tones}, {other}]",
        "data.train_weights=[0.5, 2.0]", "augment.noise_probability=0.5",
        "augment.reverb_probability=0.5", "augment.vtlp_probability=0.5"))
    result = train(config, tmp_path / "run", verbose=0)
    assert result.epochs == 1 and result.model_path.is_file()
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history["loss"]) == 1 and math.isfinite(history["loss"][0])
    # demo.yaml's cosine schedule has decayed to its floor by the end of the only epoch
    assert history["learning_rate"] == [pytest.approx(config.train.min_learning_rate)]


def test_corrupted_copies_train_from_stores_built_of_the_manifests(tones, tmp_path):
    other = write_tone_corpus(tmp_path, 6, seed=1)
    config = load_config(ROOT / "configs" / "demo.yaml", overrides(
        tones, "train.epochs=1", f"data.train_manifest=[{tones}, {other}]",
        "data.train_weights=[0.5, 2.0]", "augment.noise_probability=0.5",
        "augment.corrupted_copies=2"))
    result = train(config, tmp_path / "run", verbose=0)
    assert result.epochs == 1 and result.model_path.is_file()
    for number, count in ((0, 24), (1, 6)):
        settings = json.loads((tmp_path / "run" / "stores" / str(number) / "store.json").read_text())
        assert (settings["utterances"], settings["copies"], settings["seed"]) == (count, 2, 0)


def test_averaged_model_holds_the_mean_of_the_best_epochs_weights(tones, tmp_path):
    config = load_config(ROOT / "configs" / "demo.yaml", overrides(
        tones, "train.epochs=3", "train.average_epochs=2", "train.lr_schedule=plateau"))
    result = train(config, tmp_path / "run", verbose=0)
    dev_wers = json.loads((tmp_path / "run" / "history.json").read_text())["val_wer"]
    ranked = sorted(range(3), key=lambda epoch: (dev_wers[epoch], -epoch))
    assert result.averaged == tuple(sorted(epoch + 1 for epoch in ranked[:2]))
    assert (tmp_path / "run" / "best-epoch.keras").is_file()
    saved = [weights_in(tmp_path / "run" / "epochs" / f"epoch-{epoch:03d}.weights.h5")
             for epoch in result.averaged]
    averaged = weights_in(result.model_path)
    kernels = [name for name in averaged if not name.startswith("optimizer")]
    assert len(kernels) > 4 and all(name in saved[0] for name in kernels)
    for name in kernels:
        np.testing.assert_allclose(averaged[name], (saved[0][name] + saved[1][name]) / 2, rtol=1e-6)
    assert 0 <= result.best_dev_wer and load_model(result.model_path).vocabulary
