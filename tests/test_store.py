"""The sharded feature store: round trip, corrupted copies, resuming a killed build."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr import audio, augment, features
from asr.config import AugmentConfig, FeatureConfig
from asr.decoding.ctc import label_frames
from asr.errors import EXIT_INTERRUPTED, EXIT_OK, exit_status
from asr.manifest import Utterance, read_manifest, write_manifest
from asr.text import Vocabulary
from asr.training import store
from asr.training.store import FeatureStore, StoreError, build_store, dataset
from asr.training.store_loader import StoreLoader
from conftest import lose_an_interrupt, make_tone

FEATURES = FeatureConfig(n_mels=20)
WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "zero")


def write_corpus(folder: Path, count: int, seconds=(0.3, 0.6), broken: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    utterances = []
    for index in range(count):
        path = folder / f"u{index:03d}.wav"
        length = float(rng.uniform(*seconds))
        if index == broken:
            path.write_bytes(b"not audio")
        else:
            soundfile.write(path, make_tone(length, frequency=200 + 37 * index, seed=index), 16000)
        utterances.append(Utterance(str(path), length, WORDS[index % 10], id=f"u{index:03d}"))
    write_manifest(utterances, folder / "train.jsonl")
    return folder / "train.jsonl"


def direct(path: str, speed: float) -> np.ndarray:
    samples = audio.load_audio(path, FEATURES.sample_rate)
    return features.extract(augment.change_speed(samples, speed, FEATURES.sample_rate), FEATURES)


def test_store_round_trip_is_bit_equal_to_direct_extraction(tmp_path):
    manifest = write_corpus(tmp_path, 7, broken=3)
    summary = build_store(manifest, tmp_path / "store", FEATURES, speeds=(1.1, 1.0), shard_size=3,
                          jobs=2)
    assert (summary["shards"], summary["utterances"], summary["entries"]) == (3, 6, 12)
    assert summary["dropped"] == {"unreadable audio": 1}
    store = FeatureStore(tmp_path / "store")
    index = store.index
    assert [key.decode() for key in index["id"][::2]] == [f"u{i:03d}" for i in (0, 1, 2, 4, 5, 6)]
    assert list(index["speed"][:2]) == [1.0, 1.1]  # speeds in order, per utterance
    for row, entry in enumerate(index):
        path = str(tmp_path / f"{entry['id'].decode()}.wav")
        values, text = store.read(row)
        np.testing.assert_array_equal(values, direct(path, float(entry["speed"])))
        assert text == WORDS[int(entry["position"]) % 10]
        assert entry["label_frames"] == label_frames(text)
        assert entry["duration"] == pytest.approx(soundfile.info(path).duration, abs=1e-6)
    records = list(dataset(tmp_path / "store").as_numpy_iterator())  # tf.data alone
    assert len(records) == len(index)
    rows = {(entry["id"], float(entry["speed"])): row for row, entry in enumerate(index)}
    for record in records:
        row = rows.pop((record["id"], float(record["speed"])))
        np.testing.assert_array_equal(record["features"], store.read(row)[0])
        assert record["text"].decode() == store.read(row)[1]
    assert not rows


def test_a_killed_build_resumes_and_ends_as_an_uninterrupted_one(tmp_path):
    manifest = write_corpus(tmp_path, 80, seconds=(1.0, 1.5))
    command = [sys.executable, "-m", "asr.cli", "prepare-features", "--config",
               str(Path(__file__).parents[1] / "configs" / "demo.yaml"), "--manifest", str(manifest),
               "--shard-size", "2", "--jobs", "1", "features.n_mels=20"]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    process = subprocess.Popen([*command, "--out", str(killed)], stderr=subprocess.PIPE)
    trigger = killed / "shard-00003.json"
    while not trigger.exists() and process.poll() is None:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    done = sorted(killed.glob("shard-*.json"))
    assert 4 <= len(done) < 40 and not (killed / "index.npy").exists()
    with pytest.raises(StoreError, match="incomplete"):
        FeatureStore(killed)
    written = {path: path.stat().st_mtime_ns for path in killed.glob("shard-*.tfrecord")
               if path.with_suffix(".json").exists()}

    subprocess.run([*command, "--out", str(killed)], check=True, capture_output=True)
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in written.items())  # not redone
    build_store(manifest, whole, FEATURES, shard_size=2, jobs=1)
    assert sorted(p.name for p in killed.iterdir()) == sorted(p.name for p in whole.iterdir())
    for path in whole.glob("shard-*.tfrecord"):
        assert (killed / path.name).read_bytes() == path.read_bytes(), path.name
    np.testing.assert_array_equal(np.load(killed / "index.npy"), np.load(whole / "index.npy"))


def test_prepare_features_leaves_the_shard_size_to_build_store(tmp_path, capsys):
    from asr.cli import main
    from asr.cli.options import library_default

    manifest = write_corpus(tmp_path, 3)
    assert main(["prepare-features", "--config", str(Path(__file__).parents[1] / "configs" / "demo.yaml"),
                 "--manifest", str(manifest), "--out", str(tmp_path / "store"), "--jobs", "1",
                 "features.n_mels=20"]) == 0
    settings = json.loads((tmp_path / "store" / "store.json").read_text())
    assert settings["shard_size"] == library_default(build_store, "shard_size")
    assert "3 utterances x 1 speed(s) in 1 shard(s)" in capsys.readouterr().out


def test_a_store_written_before_a_feature_field_existed_still_loads(tmp_path):
    build_store(write_corpus(tmp_path, 2), tmp_path / "store", FEATURES, shard_size=4, jobs=1)
    settings_path = tmp_path / "store" / "store.json"
    settings = json.loads(settings_path.read_text())
    del settings["features"]["dynamic_range_db"]  # a field added after such stores were built
    settings["features"]["normalize"] = settings["features"].pop("standardize")  # its old name
    settings_path.write_text(json.dumps(settings))
    assert FeatureStore(tmp_path / "store").feature_config == FEATURES
    with pytest.raises(StoreError, match=r"other features \(features.dynamic_range_db\)"):
        StoreLoader(tmp_path / "store", Vocabulary(), FeatureConfig(n_mels=20, dynamic_range_db=50))
    settings["features"]["n_mels"] = "many"
    settings_path.write_text(json.dumps(settings))
    with pytest.raises(StoreError, match="its features cannot be read .*n_mels"):
        FeatureStore(tmp_path / "store")


# Babble mixes other utterances of the manifest; some copies come out clean (0.2 x 0.5).
NOISY = AugmentConfig(noise_probability=0.8, noise_kinds=("pink", "babble"), babble_talkers=2,
                      telephone_probability=0.5, corrupted_copies=2)


def test_corrupted_copies_are_drawn_per_utterance_speed_and_copy(tmp_path):
    manifest = write_corpus(tmp_path, 5)
    summary = build_store(manifest, tmp_path / "store", FEATURES, speeds=(1.0, 0.9), shard_size=3,
                          jobs=2, augmentation=NOISY, seed=7)
    assert (summary["utterances"], summary["entries"], summary["copies"]) == (5, 30, 2)
    index = FeatureStore(tmp_path / "store").index
    assert list(zip(index["speed"][:6], index["copy"][:6])) == [
        (0.9, 0), (0.9, 1), (0.9, 2), (1.0, 0), (1.0, 1), (1.0, 2)]
    paths = [u.audio_filepath for u in read_manifest(manifest)]

    def other_speech(rng):  # any utterance of the manifest, at its own speed
        return audio.load_audio(paths[rng.integers(len(paths))], FEATURES.sample_rate)

    store, corrupted = FeatureStore(tmp_path / "store"), 0
    for row, entry in enumerate(index):
        position, number, copy = int(entry["position"]), row % 6 // 3, int(entry["copy"])
        speed = [0.9, 1.0][number]  # the store's speeds, sorted
        samples = augment.change_speed(audio.load_audio(paths[position], 16000), speed, 16000)
        if copy:
            rng = np.random.default_rng([7, position, number, copy])
            samples = augment.corrupt(samples, augment.draw_corruption(rng, NOISY), 16000,
                                      other_speech)
        values, _ = store.read(row)
        np.testing.assert_allclose(values, features.extract(samples, FEATURES), rtol=1e-6, atol=1e-6)
        corrupted += copy > 0 and not np.allclose(values, store.read(row - copy)[0], atol=1e-3)
    assert corrupted >= 15  # of 20 copies
    with pytest.raises(StoreError, match=r"other settings \(copies, corruptions, seed\)"):
        build_store(manifest, tmp_path / "store", FEATURES, speeds=(1.0, 0.9), shard_size=3)


def test_a_lost_interrupt_stops_the_build_at_the_next_shard(tmp_path, monkeypatch, python_sigint):
    manifest = write_corpus(tmp_path, 6)
    write_shard = store._write_shard

    def write_and_lose_an_interrupt(task):
        write_shard(task)
        lose_an_interrupt()

    def job() -> int:
        build_store(manifest, tmp_path / "store", FEATURES, shard_size=2, jobs=1)
        return EXIT_OK

    monkeypatch.setattr(store, "_write_shard", write_and_lose_an_interrupt)
    assert exit_status(job) == EXIT_INTERRUPTED
    assert len(list((tmp_path / "store").glob("shard-*.tfrecord"))) == 1
