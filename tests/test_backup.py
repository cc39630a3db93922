import keras
import numpy as np
import pytest

from asr.training.backup import BackupError, TrainingBackup


def compiled_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def step(model: keras.Model) -> None:
    model.train_on_batch(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32))


def backup_after_each_of(steps: int, folder, model, **kwargs) -> list[list[np.ndarray]]:
    """Train `steps` batches, backing up after each; returns the weights each backup holds."""
    backup = TrainingBackup(folder, "config-1", **kwargs)
    backup.set_model(model)
    saved = []
    for batch in range(steps):
        step(model)
        backup.on_train_batch_end(batch)
        saved.append([np.array(w) for w in model.get_weights()])
    return saved


def test_backups_rotate_and_restore_model_and_optimizer(tmp_path):
    model = compiled_model()
    saved = backup_after_each_of(3, tmp_path, model, every_steps=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00000-0000002.json", "00000-0000002.weights.h5",
        "00000-0000003.json", "00000-0000003.weights.h5"]  # the last two
    fresh = compiled_model(seed=1)
    state = TrainingBackup(tmp_path, "config-1").restore(fresh)
    assert (state.epoch, state.step) == (0, 3)
    for restored, expected in zip(fresh.get_weights(), saved[-1]):
        np.testing.assert_array_equal(restored, expected)
    assert int(fresh.optimizer.iterations) == 3


def test_a_truncated_newest_backup_falls_back_to_the_previous_one(tmp_path, caplog):
    saved = backup_after_each_of(3, tmp_path, compiled_model(), every_steps=1)
    newest = tmp_path / "00000-0000003.weights.h5"
    newest.write_bytes(newest.read_bytes()[:100])
    fresh = compiled_model(seed=1)
    state = TrainingBackup(tmp_path, "config-1").restore(fresh)
    assert (state.epoch, state.step) == (0, 2)
    for restored, expected in zip(fresh.get_weights(), saved[1]):
        np.testing.assert_array_equal(restored, expected)
    assert "00000-0000003 cannot be used (00000-0000003.weights.h5 is damaged" in caplog.text


def test_no_usable_backup_is_an_error_not_a_fresh_start(tmp_path):
    backup_after_each_of(2, tmp_path, compiled_model(), every_steps=1)
    for weights in tmp_path.glob("*.weights.h5"):
        weights.unlink()
    with pytest.raises(BackupError, match="no usable backup"):
        TrainingBackup(tmp_path, "config-1").restore(compiled_model())


def test_a_backup_of_another_configuration_is_refused(tmp_path):
    backup_after_each_of(1, tmp_path, compiled_model(), every_steps=1)
    with pytest.raises(BackupError, match="another configuration"):
        TrainingBackup(tmp_path, "config-2").restore(compiled_model())


def test_no_backup_means_a_fresh_state(tmp_path):
    state = TrainingBackup(tmp_path / "absent", "config-1").restore(compiled_model())
    assert (state.epoch, state.step, state.history) == (0, 0, {})


def test_callback_state_and_history_survive(tmp_path):
    model = compiled_model()
    step(model)
    stopping = keras.callbacks.EarlyStopping(monitor="val_wer", mode="min", patience=3)
    stopping.set_model(model)
    backup = TrainingBackup(tmp_path, "config-1", stateful={"stopping": stopping})
    backup.set_model(model)
    stopping.on_train_begin()
    for epoch, wer in enumerate([0.5, 0.6]):
        stopping.on_epoch_end(epoch, {"val_wer": wer})
        backup.on_epoch_end(epoch, {"val_wer": wer, "loss": 1.0})

    stopping = keras.callbacks.EarlyStopping(monitor="val_wer", mode="min", patience=3)
    stopping.set_model(model)
    backup = TrainingBackup(tmp_path, "config-1", stateful={"stopping": stopping})
    state = backup.restore(model)
    stopping.on_train_begin()  # resets, as fit does; the backup, listed last, restores
    backup.on_train_begin()
    assert (state.epoch, state.step) == (2, 0)
    assert state.history == {"val_wer": [0.5, 0.6], "loss": [1.0, 1.0]}
    assert (stopping.best, stopping.wait) == (0.5, 1)
