"""Training's callbacks and schedule, against hand-computed running means and rates."""

import math

import keras
import numpy as np
import pytest

from asr.config import FeatureConfig
from asr.data import BatchSampler
from asr.errors import EXIT_INTERRUPTED, EXIT_OK, exit_status
from asr.training.callbacks import (EpochWeights, LossGuard, StopOnInterrupt, TrainingDiverged, WarmupDecay,
                                    average_epochs, best_epochs)
from conftest import lose_an_interrupt


def test_loss_guard_recovers_each_batch_loss_from_the_running_mean():
    sampler = BatchSampler([0.5] * 7, FeatureConfig(), batch_size=3, shuffle=True, seed=4)
    plan = sampler.plan(0)
    ids = [f"utterance-{i}" for i in range(7)]
    guard = LossGuard(sampler, ids, limit=100.0)
    guard.on_epoch_begin(0)
    total = count = 0
    for batch, (planned, loss) in enumerate(zip(plan, [50.0, 90.0, 150.0])):
        total, count = total + loss * len(planned.indices), count + len(planned.indices)
        if loss > 100:  # the running mean, (50 * 3 + 90 * 3 + 150) / 7 = 81, is below the limit
            with pytest.raises(TrainingDiverged, match="batch 3: loss 150 ") as error:
                guard.on_train_batch_end(batch, {"loss": total / count})
            assert error.value.args[0].endswith(", ".join(ids[i] for i in planned.indices))
        else:
            guard.on_train_batch_end(batch, {"loss": total / count})
    guard.on_epoch_begin(1)
    with pytest.raises(TrainingDiverged, match="loss nan"):
        guard.on_train_batch_end(0, {"loss": math.nan})


@pytest.mark.parametrize("shape", ["cosine", "exponential"])
def test_warmup_then_decay(shape):
    schedule = WarmupDecay(peak=1e-3, warmup_steps=10, total_steps=110, floor=1e-5, shape=shape)
    rate = lambda step: float(schedule(step))  # noqa: E731
    assert rate(0) == 0 and rate(5) == pytest.approx(5e-4) and rate(10) == pytest.approx(1e-3)
    assert rate(60) == pytest.approx(5.05e-4 if shape == "cosine" else 1e-4, rel=1e-4)
    assert rate(110) == pytest.approx(1e-5) and rate(500) == pytest.approx(1e-5)
    decaying = [rate(step) for step in range(10, 111, 10)]
    assert decaying == sorted(decaying, reverse=True)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, WarmupDecay) and float(restored(60)) == rate(60)


def test_an_exponential_decay_to_zero_is_refused():
    with pytest.raises(ValueError, match="0 < floor <= peak"):
        WarmupDecay(peak=1e-3, warmup_steps=0, total_steps=100, floor=0.0, shape="exponential")


def test_best_epochs_are_those_of_lowest_dev_wer_ties_to_the_later():
    dev_wers = [0.5, 0.1, 0.2, 0.1, 0.3, 0.2]
    assert best_epochs(dev_wers, 1) == [3]
    assert best_epochs(dev_wers, 3) == [1, 3, 5]
    assert best_epochs(dev_wers, 10) == [0, 1, 2, 3, 4, 5]


def test_average_epochs_is_the_mean_of_the_saved_weights(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dropout(0.5, seed=1),
                              keras.layers.BatchNormalization()])
    saver = EpochWeights(tmp_path)
    saver.set_model(model)
    saved = []
    for epoch in range(3):
        model.set_weights([np.full(w.shape, 10.0 * epoch + i, w.dtype) for i, w in enumerate(model.get_weights())])
        saved.append(model.get_weights())
        saver.on_epoch_end(epoch)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "epoch-001.weights.h5", "epoch-002.weights.h5", "epoch-003.weights.h5"]
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    average_epochs(model, tmp_path, [0, 2])
    for averaged, first, last in zip(model.get_weights(), saved[0], saved[2]):
        np.testing.assert_allclose(averaged, (first + last) / 2)  # BatchNorm's statistics too


def test_training_stops_at_the_next_batch_after_a_lost_interrupt(python_sigint):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    batches = []

    class LosesAnInterruptInTheSecondBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            batches.append(batch)
            if batch == 1:
                lose_an_interrupt()

    def job() -> int:
        model.fit(np.zeros((8, 2)), np.zeros((8, 1)), batch_size=2, verbose=0,
                  callbacks=[LosesAnInterruptInTheSecondBatch(), StopOnInterrupt()])
        return EXIT_OK

    assert exit_status(job) == EXIT_INTERRUPTED and batches == [0, 1]
