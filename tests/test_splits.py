"""What a training run reads: corpora numbered for their weights, dropped counts, dev's perturbed copies."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.config import ConfigError, load_config
from asr.manifest import ManifestError, Utterance, read_manifest, write_manifest
from asr.text import Vocabulary
from asr.training.splits import training_data
from test_train import ROOT, overrides, write_tone_corpus


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    return write_tone_corpus(tmp_path_factory.mktemp("tones"), 24)


def config_of(tones, *extra):
    return load_config(ROOT / "configs" / "demo.yaml", overrides(tones, *extra))


def test_corpora_number_each_manifests_utterances_and_dropped_ones_are_counted(tones, tmp_path):
    other = write_tone_corpus(tmp_path, 6, seed=1)
    utterances = read_manifest(other)
    too_long = " ".join(["seven"] * 20)  # more labels than a 0.6 s tone has logit frames
    utterances[0] = Utterance(utterances[0].audio_filepath, utterances[0].duration, too_long)
    write_manifest(utterances, other)
    data = training_data(config_of(tones, f"data.train_manifest=[{tones}, {other}]",
                                   "data.train_weights=[1.0, 2.0]"), Vocabulary(), tmp_path / "run")
    assert data.corpora.tolist() == [0] * 24 + [1] * 5
    assert len(data.loader.durations) == 29 and list(data.dropped) == ["train", "dev"]
    assert data.dropped["train"] == {"transcript too long for its audio": 1} and data.dropped["dev"] == {}
    assert [u.id for u in data.dev] == [u.id for u in sorted(read_manifest(tones), key=lambda u: u.duration)]


def test_a_manifest_with_nothing_usable_is_named(tones, tmp_path):
    empty = tones.parent / "nothing-usable.jsonl"  # beside the audio: paths may not leave it
    utterance = read_manifest(tones)[0]
    write_manifest([Utterance(utterance.audio_filepath, utterance.duration, "seven " * 20)], empty)
    with pytest.raises(ManifestError, match=f"{empty}: no usable utterances"):
        training_data(config_of(tones, f"data.train_manifest={empty}"), Vocabulary(), tmp_path)


def test_dev_is_pooled_with_its_perturbed_copies(tones, tmp_path, caplog):
    caplog.set_level("INFO", logger="asr.training.splits")
    data = training_data(config_of(tones, "data.dev_perturbations=[noise:10, telephone]"),
                         Vocabulary(), tmp_path / "run")
    assert "dev: 72 utterances, 48 of them perturbed (noise:10, telephone)" in caplog.text
    assert [u.duration for u in data.dev] == sorted(u.duration for u in data.dev)
    assert sum(u.id.endswith("+telephone") for u in data.dev) == 24
    shortest = min(read_manifest(tones), key=lambda u: u.duration)  # dev's first, so each copy's
    original = soundfile.read(shortest.audio_filepath)[0]
    for number in (0, 1):
        copies = sorted((tmp_path / "run" / "dev-perturbed" / str(number)).glob("*.wav"))
        assert len(copies) == 24
        corrupted = soundfile.read(copies[0])[0]
        assert corrupted.shape == original.shape and not np.allclose(corrupted, original, atol=1e-3)


def test_a_bad_dev_perturbation_fails_before_any_audio_is_read(tones, tmp_path):
    config = config_of(tones, "data.dev_perturbations=[fog:3]", "augment.corrupted_copies=1",
                       "augment.noise_probability=0.5")
    with pytest.raises(ConfigError, match="data.dev_perturbations: perturbation 'fog:3'"):
        training_data(config, Vocabulary(), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # neither stores nor dev copies


def test_train_weights_must_match_the_manifests(tones, tmp_path):
    config = config_of(tones, f"data.train_manifest=[{tones}, {tones}]", "data.train_weights=[1.0]")
    with pytest.raises(ConfigError, match="data.train_weights: need 2 weight"):
        training_data(config, Vocabulary(), tmp_path)


def test_corrupted_copies_are_read_from_stores_built_in_the_run(tones, tmp_path):
    config = config_of(tones, "augment.corrupted_copies=2", "augment.noise_probability=0.5")
    data = training_data(config, Vocabulary(), tmp_path / "run")
    settings = json.loads((tmp_path / "run" / "stores" / "0" / "store.json").read_text())
    assert (settings["utterances"], settings["copies"]) == (24, 2)
    assert len(data.loader.durations) == 24 and data.corpora.tolist() == [0] * 24
