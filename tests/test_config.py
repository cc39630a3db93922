from dataclasses import replace
from pathlib import Path

import pytest

from asr.config import (ConfigError, DataConfig, ExperimentConfig, FeatureConfig, TrainConfig,
                        load_config, save_config, to_dict)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_save_and_load_round_trip(tmp_path):
    config = ExperimentConfig(
        features=FeatureConfig(kind="mfcc", n_mels=40, fmax=None),
        train=TrainConfig(epochs=3, learning_rate=3e-4, bucket_boundaries=(0.5, 1.5)),
        data=DataConfig(train_manifest="train.jsonl", test_manifests=("a.jsonl", "b.jsonl")),
    )
    save_config(config, tmp_path / "run.yaml")
    assert load_config(tmp_path / "run.yaml") == config


def test_defaults_without_a_file():
    assert load_config() == ExperimentConfig()


def test_to_dict_turns_tuples_into_lists():
    tree = to_dict(ExperimentConfig())
    assert tree["train"]["bucket_boundaries"] == list(TrainConfig().bucket_boundaries)
    assert tree["data"]["test_manifests"] == []


def test_overrides_are_parsed_as_yaml_values():
    config = load_config(overrides=[
        "train.epochs=3", "train.learning_rate=5e-4", "features.fmax=null",
        "model.layer_norm=true", "train.bucket_boundaries=[1.0, 2.5]",
        "data.test_manifests=[x.jsonl]",
    ])
    assert config.train.epochs == 3
    assert config.train.learning_rate == 5e-4
    assert config.features.fmax is None
    assert config.model.layer_norm is True
    assert config.train.bucket_boundaries == (1.0, 2.5)
    assert config.data.test_manifests == ("x.jsonl",)


def test_float_fields_accept_exponent_notation(tmp_path):
    """PyYAML (YAML 1.1) reads `1e-3` as a string unless the field says float."""
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  learning_rate: 1e-3\n  max_duration: 15\n")
    train = load_config(path).train
    assert train.learning_rate == 1e-3 and isinstance(train.learning_rate, float)
    assert train.max_duration == 15.0 and isinstance(train.max_duration, float)


@pytest.mark.parametrize("override", ["train.learning_rate=fast", "train.clipnorm=true",
                                      "train.bucket_boundaries=[1, two]"])
def test_float_fields_reject_non_numbers(override):
    key = override.partition("=")[0]
    with pytest.raises(ConfigError, match=f"config.{key}: expected a number"):
        load_config(overrides=[override])


def test_overrides_apply_on_top_of_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: 10\n  batch_size: 8\nmodel:\n")
    config = load_config(path, ["train.epochs=2", "model.lstm_units=64"])
    expected = ExperimentConfig()
    expected = replace(expected, train=replace(expected.train, epochs=2, batch_size=8),
                       model=replace(expected.model, lstm_units=64))
    assert config == expected


@pytest.mark.parametrize("overrides, name", [
    (["train.epoch=3"], "epoch"),
    (["training.epochs=3"], "training"),
])
def test_unknown_override_keys_are_named(overrides, name):
    with pytest.raises(ConfigError, match=f"unknown key\\(s\\) {name};"):
        load_config(overrides=overrides)


def test_unknown_file_keys_are_named_with_their_section(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("features:\n  n_mel: 40\n")
    with pytest.raises(ConfigError, match=r"run\.yaml\.features: unknown key\(s\) n_mel"):
        load_config(path)


@pytest.mark.parametrize("override, reason", [
    ("epochs", "not of the form"),
    ("=3", "not of the form"),
    ("train.epochs.value=3", "config.train.epochs: is a value, not a section"),
])
def test_malformed_overrides(override, reason):
    with pytest.raises(ConfigError, match=reason):
        load_config(overrides=[override])


def test_override_into_a_value_from_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train: 5\n")
    with pytest.raises(ConfigError, match="train is not a section"):
        load_config(path, ["train.epochs=3"])


def test_python_tags_are_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("train: !!python/object/apply:os.system ['echo owned']\n")
    with pytest.raises(ConfigError, match="cannot read configuration") as caught:
        load_config(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_invalid_yaml_is_a_one_line_config_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train: {epochs: [\n")
    with pytest.raises(ConfigError, match="line 2") as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


def test_a_section_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train: 5\n")
    with pytest.raises(ConfigError, match="train: expected a mapping"):
        load_config(path)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_configs_load(path):
    assert isinstance(load_config(path), ExperimentConfig)
