"""What runs around Keras's fit loop in training: the learning-rate schedule, the callbacks,
and the average of the best epochs' weights.

`asr.training.train` lists the callbacks in the order they must run (`DevErrorRates`
first, since checkpointing and early stopping read the `val_wer` it logs).
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
from keras import ops

from asr.data import BatchSampler
from asr.decoding.decode import greedy_decode_batch
from asr.errors import JobFailed, raise_if_interrupted
from asr.evaluation.metrics import error_rates
from asr.fileio import atomic_path
from asr.model import predict_logits
from asr.text import Vocabulary


class TrainingDiverged(JobFailed):
    """A batch's loss was not finite or above `train.max_loss`; the message names its utterances."""


@keras.saving.register_keras_serializable(package="asr")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then decay to `floor` at `total_steps`.

    `shape` is "cosine" (half a cosine period) or "exponential" (a constant
    ratio per step). Steps past `total_steps` stay at `floor`.
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, floor: float = 0.0,
                 shape: str = "cosine"):
        if shape not in ("cosine", "exponential"):
            raise ValueError(f"unknown decay shape {shape!r} (expected 'cosine' or 'exponential')")
        if shape == "exponential" and not 0 < floor <= peak:
            raise ValueError(f"an exponential decay needs 0 < floor <= peak, got {floor} and {peak}")
        self.peak, self.floor, self.shape = peak, floor, shape
        self.warmup_steps, self.total_steps = warmup_steps, total_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = ops.cast(max(self.warmup_steps, 1), "float32")
        span = ops.cast(max(self.total_steps - self.warmup_steps, 1), "float32")
        progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        if self.shape == "cosine":
            decayed = self.floor + (self.peak - self.floor) * 0.5 * (1 + ops.cos(math.pi * progress))
        else:
            decayed = self.peak * ops.power(self.floor / self.peak, progress)
        return ops.where(step < self.warmup_steps, self.peak * step / warmup, decayed)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps, "floor": self.floor, "shape": self.shape}


class DevErrorRates(keras.callbacks.Callback):
    """Greedy-decodes the dev set after each epoch and logs `val_wer` and `val_cer`.

    Listed before checkpointing and early stopping, which read these keys.
    """

    def __init__(self, dataset, references: list[str], vocabulary: Vocabulary):
        super().__init__()
        self.dataset, self.references, self.vocabulary = dataset, references, vocabulary

    def on_epoch_end(self, epoch, logs=None):
        rates = dev_error_rates(self.model, self.dataset, self.references, self.vocabulary)
        logs["val_wer"], logs["val_cer"] = rates["wer"], rates["cer"]


def dev_error_rates(model, dataset, references: list[str], vocabulary: Vocabulary) -> dict:
    """{"wer", "cer", ...} of `model`'s greedy transcripts of `dataset` against `references`."""
    hypotheses = []
    for logits, lengths in predict_logits(model, dataset):
        hypotheses += greedy_decode_batch(logits, lengths, vocabulary)
    return error_rates(references, hypotheses)


class FollowEpochs(keras.callbacks.Callback):
    """Points the sampler at each epoch's plan, skipping the batches a resumed epoch has done."""

    def __init__(self, sampler: BatchSampler, first_epoch: int = 0, skip: int = 0):
        super().__init__()
        self.sampler, self.first_epoch, self.skip = sampler, first_epoch, skip

    def on_epoch_begin(self, epoch, logs=None):
        self.sampler.set_epoch(epoch, self.skip if epoch == self.first_epoch else 0)


class LossGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is not finite or exceeds `limit`.

    Keras logs the epoch's running mean, weighted by batch size; the sampler's
    plan gives the sizes, so the batch's own loss, and its utterances, follow.
    """

    def __init__(self, sampler: BatchSampler, ids: list[str], limit: float):
        super().__init__()
        self.sampler, self.ids, self.limit = sampler, ids, limit

    def on_epoch_begin(self, epoch, logs=None):
        self.batches, self.epoch = list(self.sampler), epoch
        self.total, self.count = 0.0, 0

    def on_train_batch_end(self, batch, logs=None):
        planned = self.batches[batch]
        count = self.count + len(planned.indices)
        total = float(logs["loss"]) * count
        loss = (total - self.total) / len(planned.indices)
        self.total, self.count = total, count
        if not math.isfinite(loss) or loss > self.limit:
            names = ", ".join(self.ids[i] for i in planned.indices)
            raise TrainingDiverged(
                f"epoch {self.epoch + 1}, batch {self.sampler.skip + batch + 1}: loss {loss:.4g} "
                f"(limit train.max_loss={self.limit:g}); utterances: {names}")


class StopOnInterrupt(keras.callbacks.Callback):
    """Ends training at the next batch after a Ctrl-C that Python lost on its way
    (`asr.errors.raise_if_interrupted`); the run resumes from its backup as after any other."""

    def on_train_batch_end(self, batch, logs=None):
        raise_if_interrupted()


class LearningRateLog(keras.callbacks.Callback):
    """Logs the rate a schedule reached as `learning_rate`, the key ReduceLROnPlateau writes."""

    def on_epoch_end(self, epoch, logs=None):
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class BestModel(keras.callbacks.Callback):
    """Saves the model whenever `val_wer` improves, atomically (`asr.fileio`)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path, self.best = path, math.inf

    def on_epoch_end(self, epoch, logs=None):
        if logs.get("val_wer", math.inf) < self.best:
            self.best = logs["val_wer"]
            with atomic_path(self.path) as partial:
                self.model.save(partial)


class EpochWeights(keras.callbacks.Callback):
    """Saves every epoch's weights in `folder` (atomically), for `average_epochs`."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        with atomic_path(epoch_weights(self.folder, epoch)) as partial:
            self.model.save_weights(partial)


def epoch_weights(folder: Path, epoch: int) -> Path:
    """Where `EpochWeights` keeps 0-based `epoch`'s weights (named by its 1-based number)."""
    return folder / f"epoch-{epoch + 1:03d}.weights.h5"


def best_epochs(dev_wers: list[float], count: int) -> list[int]:
    """The `count` 0-based epochs of lowest dev WER, in training order.

    Ties go to the later epoch, trained further and at a learning rate no higher.
    """
    ranked = sorted(range(len(dev_wers)), key=lambda epoch: (dev_wers[epoch], -epoch))
    return sorted(ranked[:count])


def average_epochs(model: keras.Model, folder: Path, epochs: list[int]) -> None:
    """Sets `model`'s weights to the mean of `epochs`' saved weights (`EpochWeights`).

    Averaging the weights of several good epochs (ESPnet's and NeMo's checkpoint
    averaging) lands nearer the middle of the basin they lie in than any one of
    them. Weights that are not floats (a dropout seed's state) keep the last
    epoch's values.
    """
    saved = []
    for epoch in epochs:
        model.load_weights(epoch_weights(folder, epoch))
        saved.append(model.get_weights())
    model.set_weights([np.mean(values, axis=0, dtype=np.float64).astype(values[-1].dtype)
                       if np.issubdtype(values[-1].dtype, np.floating) else values[-1]
                       for values in zip(*saved)])
