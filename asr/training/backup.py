"""Backups that let a killed training run resume where it stopped.

A backup is two files named `<epoch>-<step>`: the model's and optimizer's
variables (`.weights.h5`) and then a JSON state (epochs done, batches done in
the next one, history, callback states, the weights' size and SHA-256). Each is
written atomically (`asr.fileio`), weights first, so the newest state never
points at partial weights. The newest `keep` backups stay; restoring tries the
newest first and falls back to an older one when a file is missing, truncated
or does not load.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras

from asr.errors import AsrError
from asr.fileio import atomic_path, is_temporary, remove_stale_temporaries, write_json

log = logging.getLogger(__name__)

# Callback attributes that carry state from one epoch to the next (EarlyStopping,
# ReduceLROnPlateau, asr.training.callbacks.BestModel); Keras resets them in on_train_begin.
CALLBACK_STATE = ("best", "wait", "cooldown_counter", "best_epoch", "stopped_epoch")


class BackupError(AsrError):
    """A run folder whose backups cannot be resumed; the message says why."""


@dataclass
class TrainingState:
    epoch: int = 0  # epochs completed
    step: int = 0  # batches completed in epoch `epoch`
    stopped: bool = False  # early stopping ended the run
    fingerprint: str = ""  # of the configuration; a backup resumes only the same one
    history: dict[str, list[float]] = field(default_factory=dict)
    callbacks: dict[str, dict[str, float]] = field(default_factory=dict)


class TrainingBackup(keras.callbacks.Callback):
    """Backs up every `every_steps` batches (0: never mid-epoch) and at each epoch's end.

    `stateful` maps names to callbacks whose `CALLBACK_STATE` attributes are
    saved and restored. List this callback last: its epoch-end backup then sees
    what the others updated, and its on_train_begin re-applies their state after
    they have reset it.
    """

    def __init__(self, folder, fingerprint: str, every_steps: int = 0, keep: int = 2,
                 stateful: dict[str, keras.callbacks.Callback] | None = None):
        super().__init__()
        self.folder, self.every_steps, self.keep = Path(folder), every_steps, keep
        self.stateful = stateful or {}
        self.state = TrainingState(fingerprint=fingerprint)
        self._skip = 0

    def restore(self, model: keras.Model) -> TrainingState:
        """Load the newest usable backup into `model` and return its state (a fresh one if none)."""
        if self.folder.is_dir():
            remove_stale_temporaries(self.folder)
        names = sorted((path.name[:-len(".json")] for path in self._states()), reverse=True)
        problems = []
        for name in names:
            try:
                state = self._load(name, model)
            except BackupError:
                raise
            except (OSError, ValueError, KeyError, TypeError) as error:
                problems.append(f"{name}: {error}")
                log.warning("%s: backup %s cannot be used (%s); trying an older one",
                            self.folder, name, error)
                continue
            self.state, self._skip = state, state.step
            log.info("resuming from %s: epoch %d, batch %d", self.folder / name, state.epoch + 1,
                     state.step)
            return state
        if problems:
            raise BackupError(f"{self.folder}: no usable backup ({'; '.join(problems)})")
        return self.state

    def _load(self, name: str, model: keras.Model) -> TrainingState:
        record = json.loads((self.folder / f"{name}.json").read_text(encoding="utf-8"))
        if record["fingerprint"] != self.state.fingerprint:
            raise BackupError(f"{self.folder}: holds a backup of another configuration; "
                              "use a new output folder or delete this one")
        weights = self.folder / record.pop("weights")
        size, digest = record.pop("bytes"), record.pop("sha256")
        if weights.stat().st_size != size or _sha256(weights) != digest:
            raise ValueError(f"{weights.name} is damaged (size or checksum differs)")
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # its variables are in the file
        model.load_weights(weights)
        return TrainingState(**record)

    def on_train_begin(self, logs=None):
        for name, callback in self.stateful.items():
            for attribute, value in self.state.callbacks.get(name, {}).items():
                setattr(callback, attribute, value)

    def on_train_batch_end(self, batch, logs=None):
        step = self._skip + batch + 1
        if self.every_steps and step % self.every_steps == 0:
            self.state.step = step
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.state.history.setdefault(key, []).append(float(value))
        self.state.epoch, self.state.step, self._skip = epoch + 1, 0, 0
        self.state.stopped = bool(self.model.stop_training)
        self.save()

    def save(self) -> None:
        self.state.callbacks = {
            name: {a: _plain(getattr(c, a)) for a in CALLBACK_STATE if hasattr(c, a)}
            for name, c in self.stateful.items()}
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{self.state.epoch:05d}-{self.state.step:07d}"
        weights = self.folder / f"{name}.weights.h5"
        with atomic_path(weights) as partial:
            self.model.save_weights(partial)
        record = {**asdict(self.state), "weights": weights.name,
                  "bytes": weights.stat().st_size, "sha256": _sha256(weights)}
        write_json(self.folder / f"{name}.json", record)
        self._prune()

    def _states(self) -> list[Path]:
        return [path for path in self.folder.glob("*.json") if not is_temporary(path.name)]

    def _prune(self) -> None:
        states = sorted(self._states())
        for old in states[:-self.keep]:
            old.unlink()
        kept = {path.name[:-len(".json")] for path in states[-self.keep:]}
        for path in self.folder.iterdir():
            if path.name.split(".")[0] not in kept and not is_temporary(path.name):  # older weights
                path.unlink()


def _plain(value):
    """NumPy and backend scalars -> float for JSON; ints and None stay as they are."""
    return value if value is None or isinstance(value, int) else float(value)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

