import dataclasses
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.config import (AugmentConfig, ConfigError, DataConfig, ExperimentConfig, FeatureConfig, ModelConfig,
                        TrainConfig, load_config, save_config, to_dict)

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
    with pytest.raises(ConfigError, match=f"^{key}(\\[1\\])?: expected a number"):
        load_config(overrides=[override])


@pytest.mark.parametrize("override, message", [
    ("train.epochs=abc", "train.epochs: expected an integer, got 'abc'"),
    ("train.epochs=2.5", "train.epochs: expected an integer, got 2.5"),
    ("train.epochs=true", "train.epochs: expected an integer, got True"),
    ("model.layer_norm=yes please", "model.layer_norm: expected true or false, got 'yes please'"),
    ("model.layer_norm=1", "model.layer_norm: expected true or false, got 1"),
    ("data.train_manifest=5", "data.train_manifest: expected a string or a list of strings, or null, got 5"),
    ("data.test_manifests=a.jsonl", "data.test_manifests: expected a list of strings, got 'a.jsonl'"),
    ("data.test_manifests=[a.jsonl, 3]", "data.test_manifests[1]: expected a string, got 3"),
    ("model.projection_units=wide", "model.projection_units: expected an integer, or null, got 'wide'"),
    ("features.fmax=[1]", "features.fmax: expected a number, or null, got [1]"),
    ("model.subsampling=3", "model.subsampling: expected one of 1, 2, 4, got 3"),
    ("features.kind=pitch", "features.kind: expected one of 'logmel', 'mfcc', got 'pitch'"),
    ("features.standardize=global", "features.standardize: expected one of 'utterance', 'none'"),
    ("train.lr_schedule=linear", "train.lr_schedule: expected one of 'plateau', 'cosine', 'exponential'"),
    ("train.strategy=tpu", "train.strategy: expected one of 'default', 'mirrored', 'multi_worker'"),
    ("train.warmup_epochs=1", "train.warmup_epochs: needs lr_schedule cosine or exponential"),
    ("train.intra_op_threads=-1", "train.intra_op_threads: -1 is not a count"),
    ("augment.speed_factors={0.9: 1}", "augment.speed_factors: expected a list of numbers"),
    # A (low, high) range: one value had been drawn from as uniform(5, 1.0), three crashed the loader.
    ("augment.noise_snr_db=[5]", "augment.noise_snr_db: expected a list of 2 numbers, got [5]"),
    ("augment.reverb_rt60=[1, 2, 3]", "augment.reverb_rt60: expected a list of 2 numbers"),
    ("augment.gain_db=[-6, loud]", "augment.gain_db[1]: expected a number, got 'loud'"),
    # Both had ended in a traceback after loading: no epoch trained, or a division by zero.
    ("train.epochs=0", "train.epochs: 0 is not a positive count"),
    ("train.learning_rate=nan", "train.learning_rate: expected a number, got nan"),
    ("features.hop_length=0", "features.hop_length: 0 is not a positive count"),
    ("features.n_mels=-5", "features.n_mels: -5 is not a positive count"),
    ("features.win_length=1024", "features.win_length: 1024 is longer than n_fft (512)"),
    ("features.fmax=9000", "features.fmin, fmax: need 0 <= fmin < fmax <= sample_rate / 2"),
    ("augment.speed_factors=[0, 1]", "augment.speed_factors: [0.0, 1.0] must all be above 0"),
    ("augment.noise_probability=1.5", "augment.noise_probability: 1.5 is not a probability"),
    ("augment.corrupted_copies=4", "augment.corrupted_copies: 4, but no waveform corruption is on"),
    ("augment.corrupted_copies=-1", "augment.corrupted_copies: -1 is not a count"),
    ("train.batch_size=0", "train.batch_size: 0 is not a positive count"),
    ("train.lr_schedule=exponential", None),
    (["train.lr_schedule=exponential", "train.min_learning_rate=0"],
     "train.min_learning_rate: 0.0 cannot end an exponential decay"),
])
def test_every_field_is_checked_at_load_time_by_its_key_path(override, message):
    """Before, only float fields were checked: `train.epochs=abc` got past loading."""
    overrides = override if isinstance(override, list) else [override]
    if message is None:
        load_config(overrides=overrides)  # valid as it stands
        return
    with pytest.raises(ConfigError) as caught:
        load_config(overrides=overrides)
    assert str(caught.value).startswith(message)


def test_choices_and_types_are_checked_when_a_config_is_made_in_python_too():
    with pytest.raises(ConfigError, match="subsampling: expected one of 1, 2, 4, got 8"):
        ModelConfig(subsampling=8)
    assert ModelConfig(subsampling=2).subsampling == 2
    assert TrainConfig(bucket_boundaries=[1, 2]).bucket_boundaries == (1.0, 2.0)


def test_the_file_is_named_before_the_key_path(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: abc\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: train\.epochs: expected an integer, got 'abc'$"):
        load_config(path)


def test_the_old_feature_normalize_key_still_loads(tmp_path):
    """Models and configs saved before the rename carry `features.normalize`."""
    path = tmp_path / "old.yaml"
    path.write_text("features:\n  normalize: none\n")
    assert load_config(path).features.standardize == "none"


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
    with pytest.raises(ConfigError, match=r"run\.yaml: features: unknown key\(s\) n_mel"):
        load_config(path)


@pytest.mark.parametrize("override, reason", [
    ("epochs", "not of the form"),
    ("=3", "not of the form"),
    ("train.epochs.value=3", "train.epochs: expected an integer, got {'value': 3}"),
    ("train..epochs=3", "not of the form"),
    ("train.epochs=[", "not a YAML value"),
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


@pytest.mark.parametrize("escape", ['"\\UFFFFFFFF"', '"\\U80000000"'])
def test_an_escape_past_the_last_code_point_is_a_config_error(tmp_path, escape):
    """Found by fuzzing: PyYAML raises OverflowError from chr() for such escapes."""
    path = tmp_path / "escape.yaml"
    path.write_text(f"train: {{name: {escape}}}\n")
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(path)
    with pytest.raises(ConfigError, match="not a YAML value"):
        load_config(None, [f"train.epochs={escape}"])


def test_a_section_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train: 5\n")
    with pytest.raises(ConfigError, match="train: expected a mapping"):
        load_config(path)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_configs_load(path):
    assert isinstance(load_config(path), ExperimentConfig)


# Fuzzing: whatever YAML or overrides come in, loading gives a config or a ConfigError.
SECTIONS = {field.name: field.type for field in dataclasses.fields(ExperimentConfig)}
KEYS = sorted({f.name for cls in (FeatureConfig, ModelConfig, TrainConfig, DataConfig, AugmentConfig)
               for f in dataclasses.fields(cls)} | {"normalize"})
CHOICES = ["logmel", "mfcc", "utterance", "none", "plateau", "cosine", "exponential", "default",
           "mirrored", "multi_worker", 1, 2, 4]
SCALARS = (st.none() | st.booleans() | st.integers(-10**400, 10**400) | st.floats()
           | st.text(max_size=12) | st.sampled_from(CHOICES))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=3),
                      max_leaves=8)
TREES = VALUES | st.dictionaries(
    st.sampled_from(list(SECTIONS)) | st.text(max_size=6),
    VALUES | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), VALUES, max_size=6), max_size=5)
OVERRIDES = st.lists(st.builds("{}={}".format, st.builds(
    "{}.{}".format, st.sampled_from(list(SECTIONS)), st.sampled_from(KEYS)) | st.text(max_size=12),
    st.text(max_size=12) | VALUES.map(lambda value: yaml.safe_dump(value).strip())), max_size=4)
EXAMPLES = [pytest.param(300, id="300"), pytest.param(25_000, id="25000", marks=pytest.mark.slow)]


def _loads_or_config_error(path, overrides=()):
    try:
        config = load_config(path, overrides)
    except ConfigError as error:
        assert "\n" not in str(error)
        return
    assert isinstance(config, ExperimentConfig)
    save_config(config, path.with_name("saved.yaml"))  # whatever loads saves, and loads again
    load_config(path.with_name("saved.yaml"))


@pytest.mark.parametrize("examples", EXAMPLES)
def test_fuzzed_yaml_trees_load_or_raise_config_error(tmp_path, examples):
    @settings(max_examples=examples, deadline=None, database=None)
    @given(tree=TREES, overrides=OVERRIDES)
    def check(tree, overrides):
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(tree))
        _loads_or_config_error(path, overrides)

    check()


@pytest.mark.parametrize("examples", EXAMPLES)
def test_fuzzed_yaml_text_loads_or_raises_config_error(tmp_path, examples):
    @settings(max_examples=examples, deadline=None, database=None)
    @given(tree=TREES, cut=st.integers(0, 200), noise=st.text(max_size=8) | st.binary(max_size=8))
    def check(tree, cut, noise):
        text = yaml.safe_dump(tree).encode()
        noise = noise.encode() if isinstance(noise, str) else noise
        path = tmp_path / "run.yaml"
        path.write_bytes(text[:cut] + noise + text[cut:])
        _loads_or_config_error(path)

    check()
