"""Train a CTC acoustic model from manifests, keeping the best model by dev WER."""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras

from asr.config import ExperimentConfig, save_config
from asr.data import filter_utterances, make_dataset
from asr.decode import greedy_decode_batch
from asr.manifest import read_manifest
from asr.metrics import error_rates
from asr.model import build_model, predict_logits
from asr.text import Vocabulary

log = logging.getLogger(__name__)
BEST_MODEL = "model.keras"


@dataclass
class TrainResult:
    model_path: Path
    best_dev_wer: float | None
    epochs: int
    seconds: float
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)


class DevErrorRates(keras.callbacks.Callback):
    """Greedy-decodes the dev set after each epoch and logs `val_wer` and `val_cer`.

    Listed before checkpointing and early stopping, which read these keys.
    """

    def __init__(self, dataset, references: list[str], vocabulary: Vocabulary):
        super().__init__()
        self.dataset, self.references, self.vocabulary = dataset, references, vocabulary

    def on_epoch_end(self, epoch, logs=None):
        hypotheses = []
        for logits, lengths in predict_logits(self.model, self.dataset):
            hypotheses += greedy_decode_batch(logits, lengths, self.vocabulary)
        rates = error_rates(self.references, hypotheses)
        logs["val_wer"], logs["val_cer"] = rates["wer"], rates["cer"]


def train(config: ExperimentConfig, output_dir, vocabulary: Vocabulary = Vocabulary(),
          verbose="auto") -> TrainResult:
    """Train per `config`; writes `model.keras` (best dev WER), logs and history to `output_dir`."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, output_dir / "config.yaml")
    keras.utils.set_random_seed(config.train.seed)
    train_set, dev_set, dropped = _datasets(config, vocabulary)
    model = build_model(vocabulary, config.features, config.model)
    model.compile(optimizer=keras.optimizers.Adam(
        config.train.learning_rate, global_clipnorm=config.train.clipnorm))
    if verbose == "auto":  # a progress bar on a terminal, one line per epoch in logs
        verbose = 1 if sys.stdout.isatty() else 2
    # Bucketed batches have no known count, so Keras warns when the first epoch ends.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    started = time.monotonic()
    history = model.fit(train_set, epochs=config.train.epochs, verbose=verbose, shuffle=False,
                        callbacks=_callbacks(config, output_dir, dev_set, vocabulary))
    seconds = time.monotonic() - started
    (output_dir / "history.json").write_text(json.dumps(history.history, indent=1, default=float))
    dev_wers = history.history.get("val_wer", [])
    return TrainResult(output_dir / BEST_MODEL, min(dev_wers) if dev_wers else None,
                       len(history.epoch), seconds, dropped)


def _datasets(config: ExperimentConfig, vocabulary: Vocabulary):
    if not config.data.train_manifest or not config.data.dev_manifest:
        raise ValueError("data.train_manifest and data.dev_manifest must both be set")
    splits, dropped = {}, {}
    for name, path in (("train", config.data.train_manifest), ("dev", config.data.dev_manifest)):
        kept, reasons = filter_utterances(read_manifest(path), vocabulary, config.features,
                                          config.model.subsampling, config.train.max_duration)
        if not kept:
            raise ValueError(f"{path}: no usable utterances ({dict(reasons)})")
        if reasons:
            log.warning("%s: dropped %d utterance(s): %s", path, sum(reasons.values()), dict(reasons))
        splits[name], dropped[name] = kept, dict(reasons)
    train_set = make_dataset(splits["train"], vocabulary, config.features, training=True,
                             batch_size=config.train.batch_size, seed=config.train.seed,
                             bucket_boundaries=config.train.bucket_boundaries)
    dev = sorted(splits["dev"], key=lambda u: u.duration)  # similar lengths batch together
    dev_set = make_dataset(dev, vocabulary, config.features, training=False,
                           batch_size=config.train.batch_size)
    return train_set, (dev_set, [u.text for u in dev]), dropped


def _callbacks(config: ExperimentConfig, output_dir: Path, dev, vocabulary):
    dev_set, references = dev
    patience = config.train.patience
    return [
        DevErrorRates(dev_set, references, vocabulary),
        keras.callbacks.ModelCheckpoint(output_dir / BEST_MODEL, monitor="val_wer", mode="min",
                                        save_best_only=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_wer", mode="min", factor=0.5,
                                          patience=max(1, patience // 2), min_lr=1e-5),
        keras.callbacks.EarlyStopping(monitor="val_wer", mode="min", patience=patience),
        keras.callbacks.TensorBoard(log_dir=str(output_dir / "logs")),
        keras.callbacks.CSVLogger(str(output_dir / "history.csv")),
    ]
