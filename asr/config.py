"""The configuration of a run: frozen dataclasses, section by section, and their YAML files.

A run is described by one `ExperimentConfig` (features, model, training, data,
augmentation). YAML files mirror the dataclasses section by section, and
command-line overrides use dotted keys: `train.epochs=5`. Every field is checked
against its type hint when a config is made (`asr.schema`), so a bad value is
reported with its key path when the file is loaded, not when it is first used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import yaml

from asr import fileio
from asr.schema import (Checked, ConfigError, apply_override, choices, from_dict, read_yaml, require_counts,
                        to_dict)

# Re-exported: callers take the schema's functions and its error from here with the sections.
__all__ = ["AugmentConfig", "Checked", "ConfigError", "DataConfig", "ExperimentConfig",
           "FeatureConfig", "ModelConfig", "TrainConfig", "choices", "from_dict", "load_config",
           "read_yaml", "save_config", "to_dict"]

NoiseKind = Literal["white", "pink", "brown", "babble"]


@dataclass(frozen=True)
class FeatureConfig(Checked):
    """Log-mel (or MFCC) front end; saved with the model so inference matches training."""

    renamed_keys = {"normalize": "standardize"}  # as saved in configs and models before the rename

    sample_rate: int = 16000
    kind: Literal["logmel", "mfcc"] = "logmel"
    n_mels: int = 80
    n_mfcc: int = 13
    n_fft: int = 512
    win_length: int = 400  # 25 ms at 16 kHz
    hop_length: int = 160  # 10 ms at 16 kHz
    fmin: float = 20.0
    fmax: float | None = 7600.0
    # Log-mel floored this many dB below each utterance's loudest value, which makes the
    # features independent of the recording level; None: a fixed floor (asr.features.log_mel).
    dynamic_range_db: float | None = None
    standardize: Literal["utterance", "none"] = "utterance"  # per-utterance mean/variance, or none

    def __post_init__(self):
        super().__post_init__()
        require_counts(self, "sample_rate", "n_mels", "n_mfcc", "n_fft", "win_length", "hop_length")
        if self.win_length > self.n_fft:
            raise ConfigError(f"win_length: {self.win_length} is longer than n_fft ({self.n_fft})")
        if not 0 <= self.fmin < (self.fmax or self.sample_rate / 2) <= self.sample_rate / 2:
            raise ConfigError(f"fmin, fmax: need 0 <= fmin < fmax <= sample_rate / 2, got "
                              f"{self.fmin}, {self.fmax}")
        if self.dynamic_range_db is not None and self.dynamic_range_db <= 0:
            raise ConfigError(f"dynamic_range_db: {self.dynamic_range_db} is not a range in dB "
                              "(above 0, or null for a fixed floor)")

    @property
    def size(self) -> int:
        """Feature dimension per frame."""
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels


@dataclass(frozen=True)
class ModelConfig(Checked):
    """Conv subsampling front end, stacked BiLSTM, dense CTC logits."""

    conv_channels: int = 32
    subsampling: Literal[1, 2, 4] = 4  # time reduction of the conv front end
    lstm_units: int = 256
    lstm_layers: int = 3
    projection_units: int | None = None
    layer_norm: bool = False
    dropout: float = 0.1


@dataclass(frozen=True)
class TrainConfig(Checked):
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    clipnorm: float = 5.0
    # Decoupled weight decay (AdamW, Loshchilov & Hutter 2019): each step multiplies every
    # kernel by 1 - learning rate x this; biases and normalisation gains are not decayed.
    weight_decay: float = 0.0
    patience: int = 5  # epochs without dev-WER improvement before stopping
    seed: int = 0
    max_duration: float = 20.0  # seconds; longer utterances are filtered (and counted)
    bucket_boundaries: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
    # "plateau" halves the rate when dev WER stalls; "cosine" and "exponential"
    # decay it by step to min_learning_rate at the last epoch.
    lr_schedule: Literal["plateau", "cosine", "exponential"] = "plateau"
    warmup_epochs: float = 0.0  # linear warm-up from zero, before any decay
    min_learning_rate: float = 1e-5
    max_loss: float = 1e4  # a batch whose mean CTC loss is above this, or not finite, stops training
    deterministic: bool = False  # op determinism: slower, but a rerun gives the same weights
    mixed_precision: bool = False  # mixed_float16 on GPU; ignored (with a warning) elsewhere
    # "mirrored": the GPUs of one machine; "multi_worker": the cluster in TF_CONFIG
    strategy: Literal["default", "mirrored", "multi_worker"] = "default"
    backup_steps: int = 200  # batches between mid-epoch backups; 0 backs up at epoch ends only
    cache_dir: str | None = None  # on-disk feature cache shared by runs with the same features
    # Training features stay in memory across epochs when all of them (every speed)
    # fit in this many MiB per worker: FSDD (about 0.2 GB with three speeds) does;
    # a larger corpus is read again each epoch, so memory does not grow with it. With
    # waveform corruptions on, the same for the waveforms, in a budget of their own.
    memory_cache_mb: int = 2048
    # Threads one TensorFlow op may use (process-wide); 0: TensorFlow's default, one per core.
    # 1 leaves CPU cores to the loader's augmentation: the LSTM's small matrix products gain
    # little from a second thread. Sums are then ordered differently: weights differ slightly.
    intra_op_threads: int = 0
    # The saved model is the mean of the weights of this many epochs, those of lowest dev WER
    # (ESPnet's and NeMo's checkpoint averaging); 1: the best epoch's weights as they are.
    average_epochs: int = 1

    def __post_init__(self):
        super().__post_init__()
        require_counts(self, "epochs", "batch_size")
        if self.lr_schedule == "exponential" and self.min_learning_rate <= 0:
            raise ConfigError(f"min_learning_rate: {self.min_learning_rate} cannot end an exponential "
                              "decay (it would be 0 from the first step)")
        if self.average_epochs < 1:
            raise ConfigError(f"average_epochs: {self.average_epochs} is not a count (1: no averaging)")
        if self.warmup_epochs and self.lr_schedule == "plateau":
            raise ConfigError("warmup_epochs: needs lr_schedule cosine or exponential")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay: {self.weight_decay} is below 0 (0: no decay)")
        if self.intra_op_threads < 0:
            raise ConfigError(f"intra_op_threads: {self.intra_op_threads} is not a count (0: all cores)")

    @property
    def memory_cache_bytes(self) -> int:
        """`memory_cache_mb` in bytes, as the loaders' caches count it."""
        return self.memory_cache_mb * 2**20


_CORRUPTIONS = ("noise_probability", "reverb_probability", "gain_probability", "telephone_probability",
                "silence_probability")


@dataclass(frozen=True)
class AugmentConfig(Checked):
    """Training-only augmentation; everything is off by default."""

    speed_factors: tuple[float, ...] = ()  # e.g. [0.9, 1.0, 1.1]: one drawn per utterance and epoch
    frequency_masks: int = 0  # SpecAugment masks per utterance (LibriSpeech policy: 2 of 27 bins)
    frequency_mask_width: int = 27  # widest frequency mask, in feature bins
    time_masks: int = 0
    time_mask_width: int = 40  # widest time mask, in frames
    time_mask_ratio: float = 0.2  # and at most this fraction of the utterance's frames
    # Waveform corruptions (asr.augment.corrupt): each probability is per utterance and epoch;
    # every (low, high) range is drawn from uniformly.
    noise_probability: float = 0.0  # additive noise
    noise_snr_db: tuple[float, float] = (5.0, 30.0)
    noise_kinds: tuple[NoiseKind, ...] = ("white", "pink", "brown", "babble")  # one drawn per utterance
    babble_talkers: int = 4  # other training utterances summed into babble
    reverb_probability: float = 0.0  # a generated room impulse response
    reverb_rt60: tuple[float, float] = (0.2, 0.8)  # seconds for the tail to decay by 60 dB
    reverb_drr_db: tuple[float, float] = (0.0, 12.0)  # direct-to-reverberant energy ratio
    telephone_probability: float = 0.0  # 300-3400 Hz, 8 kHz mu-law round trip
    gain_probability: float = 0.0  # a level change, clipped at full scale (+-1)
    gain_db: tuple[float, float] = (-6.0, 6.0)  # full scale is 1.0; FSDD peaks at about 0.5
    vtlp_probability: float = 0.0  # vocal-tract-length perturbation, on the log-mel bins
    vtlp_warp: tuple[float, float] = (0.9, 1.1)
    # Silence before and after the utterance, as recordings cut by a person or an endpointer
    # carry it (FSDD's takes are trimmed to within about 0.1 s); then room and noise apply to it.
    silence_probability: float = 0.0
    silence_seconds: tuple[float, float] = (0.0, 1.0)  # each edge's, drawn apiece
    # 0: the waveform corruptions are drawn afresh each epoch, on the training loader's CPU.
    # K: drawn K times per utterance and speed, once, into a feature store that training then
    # reads (Kaldi's replicated data): the loader only reads, warps and masks.
    corrupted_copies: int = 0

    def __post_init__(self):
        super().__post_init__()
        for name in (setting.name for setting in dataclasses.fields(self)):
            value = getattr(self, name)
            if name.endswith("_probability") and not 0 <= value <= 1:
                raise ConfigError(f"{name}: {value} is not a probability (0 to 1)")
            if name.endswith(("_factors", "_warp", "_rt60")) and not all(item > 0 for item in value):
                raise ConfigError(f"{name}: {list(value)} must all be above 0")
        if not 0 <= self.silence_seconds[0] <= self.silence_seconds[1]:
            raise ConfigError(f"silence_seconds: {list(self.silence_seconds)} must be a range of seconds "
                              "(0 <= low <= high)")
        if self.corrupted_copies < 0:
            raise ConfigError(f"corrupted_copies: {self.corrupted_copies} is not a count (0: none stored)")
        if self.corrupted_copies and not self.corrupts:
            raise ConfigError(f"corrupted_copies: {self.corrupted_copies}, but no waveform corruption "
                              f"is on to draw them ({', '.join(_CORRUPTIONS)} are all 0)")

    @property
    def corrupts(self) -> bool:
        """Whether any waveform corruption is on."""
        return any(getattr(self, name) for name in _CORRUPTIONS)


@dataclass(frozen=True)
class DataConfig(Checked):
    # One manifest, or several mixed per epoch: each gives `weight x its size` utterances to
    # every epoch (a fraction is a fresh random subset each epoch; beyond 1, whole passes repeat).
    train_manifest: str | tuple[str, ...] | None = None
    train_weights: tuple[float, ...] = ()  # one per train manifest; empty: 1.0 each
    # Feature stores (`asr prepare-features`) to train from instead of train_manifest's audio;
    # several mix by train_weights as manifests do.
    train_store: str | tuple[str, ...] | None = None
    dev_manifest: str | None = None
    # Dev WER, which picks the best epoch and drives the plateau schedule and early stopping, is
    # scored on dev pooled with a copy of it under each of these (`noise:10`, `reverb:0.5`,
    # `telephone`: asr.augment.parse_perturbation); the copies go to the run's dev-perturbed/.
    dev_perturbations: tuple[str, ...] = ()
    test_manifests: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExperimentConfig(Checked):
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def load_config(path=None, overrides=()) -> ExperimentConfig:
    """Read YAML (safe_load) into an `ExperimentConfig`, then apply `key.path=value` overrides.

    Every value is checked against its field's type at once; a problem raises
    ConfigError naming the file and the key path (`train.epochs: expected an integer, got 'abc'`).
    """
    tree = {} if path is None else read_yaml(path, "configuration")
    for override in overrides:
        tree = apply_override(tree, override)
    try:
        return from_dict(ExperimentConfig, tree)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}" if path is not None else str(error)) from None


def save_config(config, path) -> None:
    fileio.write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))
