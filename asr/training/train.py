"""Train a CTC acoustic model from manifests, keeping the best model by dev WER.

A run folder holds `model.keras` (best dev WER; with `train.average_epochs`, the
mean of the best epochs' weights, the best epoch's own in `best-epoch.keras`
and every epoch's in `epochs/`), `config.yaml`, `dropped.json`
(utterances filtered out, by reason), `history.json`/`history.csv`, TensorBoard
`logs/` and `backup/`, from which running the same command again resumes a
killed run at the batch it had reached (and does nothing after a finished one);
with `data.dev_perturbations`, also the corrupted dev copies in `dev-perturbed/`, and
with `augment.corrupted_copies`, the training manifests' feature stores in `stores/`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import keras
import tensorflow as tf

from asr import keras_compat
from asr.config import ExperimentConfig, TrainConfig, save_config, to_dict
from asr.data import BatchSampler, make_dataset, sampled_dataset
from asr.fileio import atomic_path, remove_stale_temporaries, write_json
from asr.model import ModelError, SpeechRecognizer, build_model, load_model
from asr.text import Vocabulary
from asr.training.allocator import keep_freed_memory
from asr.training.backup import TrainingBackup
from asr.training.callbacks import (BestModel, DevErrorRates, EpochWeights, FollowEpochs, LearningRateLog,
                                    LossGuard, StopOnInterrupt, WarmupDecay, average_epochs, best_epochs,
                                    dev_error_rates)
from asr.training.splits import training_data

log = logging.getLogger(__name__)
BEST_MODEL = "model.keras"
BEST_EPOCH = "best-epoch.keras"  # the best epoch's model, when model.keras is an average
EPOCHS = "epochs"  # every epoch's weights, when averaging
DECAY_EXEMPT = ("bias", "gamma", "beta")  # in the names of weights weight decay leaves alone


@dataclass
class TrainResult:
    model_path: Path
    best_dev_wer: float | None  # of the model at model_path
    epochs: int
    seconds: float
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    averaged: tuple[int, ...] = ()  # 1-based epochs whose mean weights model_path holds


def train(config: ExperimentConfig, output_dir, vocabulary: Vocabulary | None = None,
          verbose="auto", init_from=None) -> TrainResult:
    """Train per `config`; writes `model.keras` (best dev WER), logs and history to `output_dir`.

    `init_from` is a `.keras` model to start from: every layer is copied, the
    output layer only when the vocabularies match. `vocabulary` defaults to
    that model's, else to `Vocabulary()`. Running the same call again resumes
    from `output_dir/backup`.
    """
    configure_process(config.train)  # before TensorFlow runs an op
    strategy = make_strategy(config.train.strategy)  # multi-worker: before any other TF op
    source = load_model(init_from) if init_from else None
    vocabulary = vocabulary or (source.vocabulary if source else Vocabulary())
    log.info("training on %d replica(s) with %s", strategy.num_replicas_in_sync,
             type(strategy).__name__)
    output_dir = _worker_folder(Path(output_dir), strategy)
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_dir)  # of a killed run: half-written model, backup or logs
    save_config(config, output_dir / "config.yaml")
    keras.utils.set_random_seed(config.train.seed)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()  # process-wide, and cannot be undone
    data = training_data(config, vocabulary, output_dir)
    loader = data.loader
    write_json(output_dir / "dropped.json", data.dropped)
    sampler = BatchSampler(loader.durations, config.features,
                           config.train.batch_size, shuffle=True, seed=config.train.seed,
                           bucket_boundaries=config.train.bucket_boundaries,
                           speed_factors=config.augment.speed_factors,
                           multiple_of=strategy.num_replicas_in_sync,
                           corpora=data.corpora, weights=config.data.train_weights)
    dev_set = make_dataset(data.dev, vocabulary, config.features, training=False,
                           batch_size=config.train.batch_size,
                           memory_bytes=config.train.memory_cache_bytes)
    dev_texts = [utterance.text for utterance in data.dev]

    with precision_policy(config.train.mixed_precision), strategy.scope():
        model = _compiled_model(config, vocabulary, strategy, len(sampler), source, init_from)
        callbacks, backup = _callbacks(config, output_dir, (dev_set, dev_texts),
                                       vocabulary, sampler, loader.keys(),
                                       _fingerprint(config, vocabulary))
        state = backup.restore(model)
        if not (state.epoch or state.step):  # a fresh start: no rows from an older run
            (output_dir / "history.csv").unlink(missing_ok=True)
        callbacks.insert(0, FollowEpochs(sampler, state.epoch, state.step))
        started = time.monotonic()
        if not state.stopped and state.epoch < config.train.epochs:
            if verbose == "auto":  # a progress bar on a terminal, one line per epoch in logs
                verbose = 1 if sys.stdout.isatty() else 2
            with warnings.catch_warnings():  # the sampler's batches have no known count,
                warnings.filterwarnings("ignore", message="Your input ran out of data")  # so Keras warns
                model.fit(_training_inputs(strategy, sampler, loader, config.augment),
                          epochs=config.train.epochs, initial_epoch=state.epoch, verbose=verbose,
                          shuffle=False, callbacks=callbacks)
    seconds = time.monotonic() - started
    log.info("this worker loaded %d training utterance(s)", loader.loaded)
    history = backup.state.history
    write_json(output_dir / "history.json", history)
    dev_wers = history.get("val_wer", [])
    result = TrainResult(output_dir / BEST_MODEL, min(dev_wers) if dev_wers else None,
                         len(dev_wers), seconds, data.dropped)
    if config.train.average_epochs > 1 and dev_wers:
        result = _save_average(model, strategy, result, best_epochs(dev_wers, config.train.average_epochs),
                               output_dir / EPOCHS, (dev_set, dev_texts), vocabulary)
    return result


def _save_average(model, strategy, result: TrainResult, epochs: list[int], weights_folder: Path,
                  dev, vocabulary: Vocabulary) -> TrainResult:
    """Save the mean of `epochs`' weights as the model, scored on `dev` (dataset, texts) again."""
    with strategy.scope():
        average_epochs(model, weights_folder, epochs)
    rates = dev_error_rates(model, *dev, vocabulary)
    with atomic_path(result.model_path) as partial:
        model.save(partial)
    averaged = tuple(epoch + 1 for epoch in epochs)
    log.info("averaged epochs %s: dev WER %.2f%% (best epoch alone %.2f%%)",
             list(averaged), 100 * rates["wer"], 100 * result.best_dev_wer)
    return replace(result, best_dev_wer=rates["wer"], averaged=averaged)


def configure_process(train_config) -> None:
    """The process-wide settings training steps run with: `train.intra_op_threads`, and
    glibc's malloc keeping what a step frees for the next (`asr.training.allocator`).

    Call before TensorFlow runs its first op.
    """
    set_intra_op_threads(train_config.intra_op_threads)
    keep_freed_memory()


def set_intra_op_threads(count: int) -> None:
    """Threads one TensorFlow op may use, process-wide; 0 keeps TensorFlow's choice.

    TensorFlow takes it only before it runs its first op; asked later for a
    different count, this warns and leaves the count as it is.
    """
    if not count:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(count)
    except RuntimeError:  # "cannot be modified after initialization"
        log.warning("train.intra_op_threads %d not applied: TensorFlow has already started", count)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """"default" (one device), "mirrored" (this machine's GPUs, else its logical CPUs) or
    "multi_worker" (the cluster in TF_CONFIG)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}")  # TrainConfig checks it on loading


def copy_weights(source: SpeechRecognizer, target: SpeechRecognizer, where="source model") -> None:
    """Copy `source`'s weights into `target` layer by layer, except the output layer when
    the vocabularies differ (it keeps its fresh initialisation)."""
    if source.feature_config != target.feature_config:
        differ = [k for k, v in to_dict(target.feature_config).items()
                  if to_dict(source.feature_config)[k] != v]
        raise ModelError(f"{where}: trained on other features (features.{', features.'.join(differ)})")
    if len(source.layers) != len(target.layers):
        raise ModelError(f"{where}: has {len(source.layers)} layers, the config gives "
                         f"{len(target.layers)}; its model section must match")
    for old, new in zip(source.layers, target.layers):
        if new is target.classifier and source.vocabulary != target.vocabulary:
            continue
        weights = old.get_weights()
        shapes = [w.shape for w in weights], [tuple(v.shape) for v in new.weights]
        if shapes[0] != shapes[1]:
            raise ModelError(f"{where}: layer {old.name} has weights of shapes {shapes[0]}, the "
                             f"config gives {shapes[1]}; its model section must match")
        new.set_weights(weights)


def _compiled_model(config: ExperimentConfig, vocabulary: Vocabulary, strategy,
                    steps_per_epoch: int, source=None, where=None) -> SpeechRecognizer:
    model = build_model(vocabulary, config.features, config.model)
    if source is not None:
        copy_weights(source, model, where)
    model.compile(optimizer=optimizer(config.train, steps_per_epoch, strategy.num_replicas_in_sync))
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        keras_compat.fit_under_multi_worker(model)
    return model


def optimizer(train_config: TrainConfig, steps_per_epoch: int,
              replicas: int = 1) -> keras.optimizers.Optimizer:
    """Adam with `train_config`'s learning-rate schedule, gradient clipping and weight decay."""
    # Keras clips each replica's share of the gradient before summing the
    # shares, so each gets its share of the limit: the sum stays within it.
    adam = keras.optimizers.Adam(_learning_rate(train_config, steps_per_epoch),
                                 global_clipnorm=train_config.clipnorm / replicas,
                                 weight_decay=train_config.weight_decay or None)
    if train_config.weight_decay:  # a shift or a scale is not a weight to pull towards 0
        adam.exclude_from_weight_decay(var_names=DECAY_EXEMPT)
    return adam


def _learning_rate(train_config, steps_per_epoch: int):
    schedule, peak = train_config.lr_schedule, train_config.learning_rate
    if schedule == "plateau":
        return peak
    return WarmupDecay(peak, round(train_config.warmup_epochs * steps_per_epoch),
                       train_config.epochs * steps_per_epoch, train_config.min_learning_rate,
                       schedule)


def _callbacks(config, output_dir: Path, dev, vocabulary, sampler, ids, fingerprint):
    """The callbacks in the order they must run, and the backup (last of them)."""
    patience = config.train.patience
    averaging = config.train.average_epochs > 1
    stateful = {"best_model": BestModel(output_dir / (BEST_EPOCH if averaging else BEST_MODEL)),
                "early_stopping": keras.callbacks.EarlyStopping(monitor="val_wer", mode="min",
                                                                patience=patience)}
    if config.train.lr_schedule == "plateau":
        stateful["plateau"] = keras.callbacks.ReduceLROnPlateau(
            monitor="val_wer", mode="min", factor=0.5, patience=max(1, patience // 2),
            min_lr=config.train.min_learning_rate)
    schedule = [] if "plateau" in stateful else [LearningRateLog()]
    backup = TrainingBackup(output_dir / "backup", fingerprint, config.train.backup_steps,
                            stateful=stateful)
    return [
        DevErrorRates(*dev, vocabulary),
        LossGuard(sampler, ids, config.train.max_loss),
        StopOnInterrupt(),
        *schedule,
        *stateful.values(),
        *([EpochWeights(output_dir / EPOCHS)] if averaging else []),
        keras.callbacks.TensorBoard(log_dir=str(output_dir / "logs")),
        keras.callbacks.CSVLogger(str(output_dir / "history.csv"), append=True),
        backup,
    ], backup


def _fingerprint(config: ExperimentConfig, vocabulary: Vocabulary) -> str:
    """What a backup must share with the run resuming it: all but the epoch count."""
    tree = to_dict(config)
    tree["train"]["epochs"] = 0  # as fingerprints have always read it, so older backups resume
    text = json.dumps([tree, vocabulary.characters], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def precision_policy(mixed: bool):
    """mixed_float16 for models built inside, on GPU only; the previous policy after.

    Keras then wraps the optimizer in a LossScaleOptimizer on its own.
    """
    previous = keras.mixed_precision.dtype_policy()
    if mixed and tf.config.list_physical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
    elif mixed:
        log.warning("train.mixed_precision needs a GPU; training in float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _training_inputs(strategy, sampler: BatchSampler, loader, augmentation):
    """The training batches as `strategy` takes them: whole, split over one worker's replicas,
    or under MultiWorkerMirroredStrategy, each worker loading only its replicas' slices."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return sampled_dataset(sampler, loader, augmentation)
    total = strategy.num_replicas_in_sync

    def worker_inputs(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = total // context.num_input_pipelines
        share = (context.input_pipeline_id * local, local, total)
        return sampled_dataset(sampler, loader, augmentation, share)

    return strategy.distribute_datasets_from_function(worker_inputs)


def _worker_folder(output_dir: Path, strategy) -> Path:
    """The run folder for the chief; other workers of a multi-worker run write beside it."""
    if strategy.extended.should_checkpoint:
        return output_dir
    resolver = strategy.cluster_resolver
    return output_dir / f"{resolver.task_type}-{resolver.task_id}"
