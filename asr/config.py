"""Frozen configuration dataclasses and their YAML form.

A run is described by one `ExperimentConfig` (features, model, training, data,
decoding). YAML files mirror the dataclasses section by section, and
command-line overrides use dotted keys: `train.epochs=5`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel (or MFCC) front end; saved with the model so inference matches training."""

    sample_rate: int = 16000
    kind: str = "logmel"  # "logmel" or "mfcc"
    n_mels: int = 80
    n_mfcc: int = 13
    n_fft: int = 512
    win_length: int = 400  # 25 ms at 16 kHz
    hop_length: int = 160  # 10 ms at 16 kHz
    fmin: float = 20.0
    fmax: float | None = 7600.0
    normalize: str = "utterance"  # "utterance" mean/variance, or "none"

    @property
    def size(self) -> int:
        """Feature dimension per frame."""
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels


@dataclass(frozen=True)
class ModelConfig:
    """Conv subsampling front end, stacked BiLSTM, dense CTC logits."""

    conv_channels: int = 32
    subsampling: int = 4  # time reduction of the conv front end: 1, 2 or 4
    lstm_units: int = 256
    lstm_layers: int = 3
    projection_units: int | None = None
    layer_norm: bool = False
    dropout: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    clipnorm: float = 5.0
    patience: int = 5  # epochs without dev-WER improvement before stopping
    seed: int = 0
    max_duration: float = 20.0  # seconds; longer utterances are filtered (and counted)
    bucket_boundaries: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
    # "plateau" halves the rate when dev WER stalls; "cosine" and "exponential"
    # decay it by step to min_learning_rate at the last epoch.
    lr_schedule: str = "plateau"
    warmup_epochs: float = 0.0  # linear warm-up from zero, before any decay
    min_learning_rate: float = 1e-5
    max_loss: float = 1e4  # a batch whose mean CTC loss is above this, or not finite, stops training
    deterministic: bool = False  # op determinism: slower, but a rerun gives the same weights
    mixed_precision: bool = False  # mixed_float16 on GPU; ignored (with a warning) elsewhere
    strategy: str = "default"  # "default", "mirrored" (GPUs of one machine) or "multi_worker"
    backup_steps: int = 200  # batches between mid-epoch backups; 0 backs up at epoch ends only
    cache_dir: str | None = None  # on-disk feature cache shared by runs with the same features


@dataclass(frozen=True)
class AugmentConfig:
    """Training-only augmentation; everything is off by default."""

    speed_factors: tuple[float, ...] = ()  # e.g. [0.9, 1.0, 1.1]: one drawn per utterance and epoch
    frequency_masks: int = 0  # SpecAugment masks per utterance (LibriSpeech policy: 2 of 27 bins)
    frequency_mask_width: int = 27  # widest frequency mask, in feature bins
    time_masks: int = 0
    time_mask_width: int = 40  # widest time mask, in frames
    time_mask_ratio: float = 0.2  # and at most this fraction of the utterance's frames


@dataclass(frozen=True)
class DataConfig:
    train_manifest: str | None = None
    dev_manifest: str | None = None
    test_manifests: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExperimentConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


class ConfigError(ValueError):
    """A configuration file or override that does not fit the dataclasses."""


def load_config(path=None, overrides=()) -> ExperimentConfig:
    """Read YAML (safe_load) into an `ExperimentConfig`, then apply `key.path=value` overrides."""
    tree = {}
    if path is not None:
        try:
            tree = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"{path}: cannot read configuration ({_one_line(error)})") from None
    for override in overrides:
        _apply_override(tree, override)
    return from_dict(ExperimentConfig, tree, where=str(path or "config"))


def save_config(config, path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def to_dict(config) -> dict:
    """Dataclass -> plain dict (tuples become lists) for YAML/JSON."""
    return _plain(dataclasses.asdict(config))


def from_dict(cls, tree: dict, where: str = "config"):
    """Build dataclass `cls` from a nested dict, rejecting unknown keys by name."""
    if not isinstance(tree, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(tree).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(tree) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    values = {}
    for name, value in tree.items():
        kind = fields[name].type
        nested = _dataclass_named(kind)
        if nested is not None:
            values[name] = from_dict(nested, value or {}, f"{where}.{name}")
        elif isinstance(value, dict):
            raise ConfigError(f"{where}.{name}: is a value, not a section")
        else:
            value = tuple(value) if isinstance(value, list) else value
            values[name] = _as_float(value, f"{where}.{name}") if "float" in str(kind) else value
    return cls(**values)


def _as_float(value, where: str):
    """YAML 1.1 reads `1e-3` as a string, so float fields convert explicitly."""
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        return tuple(map(float, value)) if isinstance(value, tuple) else float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None


def _dataclass_named(type_name):
    candidates = {c.__name__: c for c in (FeatureConfig, ModelConfig, TrainConfig, DataConfig,
                                                AugmentConfig)}
    return candidates.get(type_name if isinstance(type_name, str) else getattr(type_name, "__name__", ""))


def _apply_override(tree: dict, override: str) -> None:
    key, separator, text = override.partition("=")
    if not separator or not key:
        raise ConfigError(f"override {override!r} is not of the form section.key=value")
    *sections, leaf = key.strip().split(".")
    node = tree
    for section in sections:
        if node.get(section) is None:  # `train:` with nothing under it is an empty section
            node[section] = {}
        node = node[section]
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {section} is not a section")
    node[leaf] = yaml.safe_load(text)


def _one_line(error: Exception) -> str:
    """YAML errors quote the offending source over several lines; keep problem and position."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
