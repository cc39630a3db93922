"""Training from feature stores: filtering, speeds, VTLP, corrupted copies, several stores."""

import dataclasses
import json

import numpy as np
import pytest

from asr import augment
from asr.config import AugmentConfig, FeatureConfig
from asr.data import UtteranceLoader
from asr.manifest import read_manifest
from asr.text import Vocabulary
from asr.training.store import FeatureStore, StoreError, build_store
from asr.training.store_loader import StoreLoader
from test_store import FEATURES, NOISY, WORDS, direct, write_corpus


def test_store_loader_filters_like_the_manifest_path_and_checks_its_store(tmp_path):
    manifest = write_corpus(tmp_path, 6)
    build_store(manifest, tmp_path / "store", FEATURES, speeds=(0.9, 1.0), shard_size=4, jobs=1)
    loader = StoreLoader(tmp_path / "store", Vocabulary(), FEATURES, speed_factors=(1.0, 0.9),
                         subsampling=4, max_duration=0.5, memory_bytes=0)
    durations = FeatureStore(tmp_path / "store").index["duration"][::2]
    assert len(loader) + loader.dropped["longer than max_duration"] == 6
    assert np.all(loader.durations <= 0.5) and sum(durations > 0.5) > 0
    first = loader.keys()[0]
    values, lengths, labels, label_lengths = loader.batch([0, 0], np.float32([0.9, 1.0]))
    position = int(first[1:])
    np.testing.assert_array_equal(values[1, :lengths[1]],
                                  direct(str(tmp_path / f"{first}.wav"), 1.0))
    assert Vocabulary().decode(labels[0, :label_lengths[0]]) == WORDS[position % 10]
    assert loader.loaded == 2
    with pytest.raises(StoreError, match=r"no features at speed\(s\) \[1.1\]"):
        StoreLoader(tmp_path / "store", Vocabulary(), FEATURES, speed_factors=(1.1,))
    with pytest.raises(StoreError, match="other features .*n_mels"):
        StoreLoader(tmp_path / "store", Vocabulary(), FeatureConfig())
    with pytest.raises(StoreError, match="outside the vocabulary"):
        StoreLoader(tmp_path / "store", Vocabulary("abc"), FEATURES)
    with pytest.raises(StoreError, match=r"other settings \(speeds\)"):
        build_store(manifest, tmp_path / "store", FEATURES, speeds=(1.0,), shard_size=4)
    assert json.loads((tmp_path / "store" / "store.json").read_text())["speeds"] == [0.9, 1.0]


def test_store_loader_warps_stored_features_as_the_audio_is_warped(tmp_path):
    """VTLP works on features: a store's batch equals its audio's under the same seed."""
    manifest = write_corpus(tmp_path, 4)
    build_store(manifest, tmp_path / "store", FEATURES, shard_size=4, jobs=1)
    vtlp = AugmentConfig(vtlp_probability=0.5, vtlp_warp=(0.8, 1.2))
    stored = StoreLoader(tmp_path / "store", Vocabulary(), FEATURES, augmentation=vtlp)
    by_id = {u.id: u for u in read_manifest(manifest)}
    from_audio = UtteranceLoader([by_id[key] for key in stored.keys()], Vocabulary(), FEATURES,
                                 augmentation=vtlp)
    indices, speeds, seed = [0, 1, 2, 3] * 2, np.ones(8, np.float32), np.array([3, 7])
    warped = stored.batch(indices, speeds, seed)
    for mine, theirs in zip(warped, from_audio.batch(indices, speeds, seed)):
        np.testing.assert_array_equal(mine, theirs)
    plain = stored.batch(indices, speeds)
    changed = [not np.array_equal(a, b) for a, b in zip(warped[0], plain[0])]
    assert any(changed) and not all(changed)  # probability 0.5 over eight rows, seeded
    with pytest.raises(StoreError, match=r"store: holds no corrupted copies .*augment.corrupted_copies"):
        StoreLoader(tmp_path / "store", Vocabulary(), FEATURES,
                    augmentation=AugmentConfig(noise_probability=0.5))


def test_store_loader_reads_the_copy_standing_for_the_corruption_it_draws(tmp_path):
    build_store(write_corpus(tmp_path, 4), tmp_path / "store", FEATURES, shard_size=4, jobs=1,
                augmentation=NOISY, seed=3)
    loader = StoreLoader(tmp_path / "store", Vocabulary(), FEATURES, augmentation=NOISY)
    index = FeatureStore(tmp_path / "store").index
    indices, speeds, seed = [0, 1, 2, 3] * 2, np.ones(8, np.float32), np.array([5, 9])
    values, lengths, _, _ = loader.batch(indices, speeds, seed)
    picked = []
    for row, rng in enumerate(augment.row_generators(seed, 8)):
        copy = 1 + augment.draw_corruption(rng, NOISY).seed % 2
        key = loader.keys()[indices[row]].encode()
        stored = np.flatnonzero((index["id"] == key) & (index["copy"] == copy))[0]
        np.testing.assert_array_equal(values[row, :lengths[row]], loader.stores[0].read(stored)[0])
        picked.append(copy)
    assert set(picked) == {1, 2}
    clean, clean_lengths, _, _ = loader.batch(indices, speeds)  # unseeded: as recorded
    np.testing.assert_array_equal(clean[0, :clean_lengths[0]], loader.stores[0].read(0)[0])
    with pytest.raises(StoreError, match=r"corrupted with other settings \(augment.noise_snr_db\)"):
        StoreLoader(tmp_path / "store", Vocabulary(), FEATURES,
                    augmentation=dataclasses.replace(NOISY, noise_snr_db=(0.0, 5.0)))


def test_one_loader_reads_several_stores_in_order(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    build_store(write_corpus(first, 3), first / "store", FEATURES, jobs=1)
    build_store(write_corpus(second, 2, seconds=(0.7, 0.8)), second / "store", FEATURES, jobs=1)
    loader = StoreLoader([first / "store", second / "store"], Vocabulary(), FEATURES)
    assert len(loader) == 5 and list(loader.corpora) == [0, 0, 0, 1, 1]
    assert list(loader.keys()) == ["u000", "u001", "u002", "u000", "u001"]
    assert np.all(loader.durations[3:] >= 0.7) and np.all(loader.durations[:3] <= 0.6)
    np.testing.assert_array_equal(loader.example(4)[0], direct(str(second / "u001.wav"), 1.0))
