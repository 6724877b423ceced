"""The training checkpoint: a run restored from it carries on with the same model and optimizer
state, the file on disk is always a whole checkpoint, and only the training that wrote it (the
same settings and data) resumes it."""

from __future__ import annotations

import csv
import logging
import shutil
import time

import keras
import numpy as np
import pytest

from marsseg.checkpoint import (
    callback_state,
    checkpoint_callback,
    epochs_completed,
    restore_callback_state,
    restore_checkpoint,
    saved_fingerprint,
    stopped_early,
    training_state,
    write_checkpoint,
)
from marsseg.io import save_arrays
from marsseg.models.losses import make_loss
from marsseg.training import (
    compiled_model,
    score_callbacks,
    train_member_in,
    training_fingerprint,
)

TRAINING = {
    "batch_size": 8,
    "micro_batch_size": 4,  # gradient accumulators in the optimizer's state too
    "learning_rate": 0.001,
    "weight_decay": 0.001,
}
PARAMS = {"filters": [4, 8], "dilation_rates": [1, 2]}
# A member as train_member_in takes it.
SETTINGS = {
    "architecture": "unet",
    "params": PARAMS,
    "loss": {"name": "sparse_categorical_crossentropy"},
    "training": {**TRAINING, "epochs": 2, "reduce_lr_patience": 5, "early_stopping_patience": 5},
    "target": "classes",
}


def write_data(directory, n_train=16, n_val=8, seed=0):
    """Tiny train.npz and val.npz in `directory`."""
    rng = np.random.default_rng(seed)
    for name, n in (("train", n_train), ("val", n_val)):
        masks = rng.integers(0, 5, (n, 64, 128), dtype=np.uint8)
        save_arrays(directory / f"{name}.npz", images=(masks * 50).astype(np.uint8), masks=masks)


def train_in(directory, settings=SETTINGS, extra_callbacks=()) -> dict:
    """train_member_in on the data in `directory`, writing there (checkpoints in checkpoint/)."""
    data = (directory / "train.npz", directory / "val.npz")
    return train_member_in(directory, *data, settings, seed=0, extra_callbacks=extra_callbacks)


def new_model(params=PARAMS):
    loss = make_loss({"name": "sparse_categorical_crossentropy"}, num_classes=5)
    return compiled_model("unet", params, loss, TRAINING, num_classes=5)


def state(model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in training_state(model)]


def test_a_restored_model_has_the_trained_models_weights_and_optimizer_state(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((12, 64, 128, 1), dtype=np.float32)
    y = rng.integers(0, 5, (12, 64, 128), dtype=np.uint8)
    path = tmp_path / "checkpoint.npz"
    trained = new_model()
    trained.optimizer.learning_rate = 0.0005
    trained.fit(x, y, batch_size=4, epochs=2, callbacks=[checkpoint_callback(path)], verbose=0)
    assert epochs_completed(path) == 2
    assert not list(tmp_path.glob("*.partial"))

    restored = new_model()
    assert restore_checkpoint(path, restored) == 2
    saved, loaded, fresh = state(trained), state(restored), state(new_model())
    assert len(saved) == len(loaded) > len(trained.variables)
    for a, b in zip(saved, loaded, strict=True):
        np.testing.assert_array_equal(a, b)
    # it did change something: the steps taken, the weights and Adam's moments
    assert int(restored.optimizer.iterations) == 3  # 6 passes of 4 images, an update every 2
    assert float(restored.optimizer.learning_rate) == pytest.approx(0.0005)  # as ReduceLR left it
    assert sum(not np.array_equal(a, b) for a, b in zip(saved, fresh, strict=True)) > 50


def test_each_checkpoint_replaces_the_last_whole(tmp_path):
    path = tmp_path / "checkpoint.npz"
    assert epochs_completed(path) == 0
    write_checkpoint(path, 1, [np.zeros(3)])
    (tmp_path / "checkpoint.npz.partial").write_bytes(b"left by a job killed mid-write")
    write_checkpoint(path, 2, [np.ones(3)])
    assert epochs_completed(path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]


def test_a_checkpoint_of_another_model_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "checkpoint.npz"
    write_checkpoint(path, 3, state(new_model()))
    other = new_model({"filters": [4, 8, 16], "dilation_rates": [1, 2]})
    with pytest.raises(ValueError, match=r"another model.*Delete"):
        restore_checkpoint(path, other)


def test_callback_state_for_other_callbacks_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "checkpoint.npz"
    write_checkpoint(path, 3, [np.zeros(3)], *callback_state(plateau_callbacks()))
    reduce_lr, _ = plateau_callbacks()
    with pytest.raises(ValueError, match=r"state of 2 callbacks, not of this run's 1.*Delete"):
        restore_callback_state(path, [reduce_lr])


def plateau_callbacks():
    """The two callbacks `train_member` carries across a resume, with short patience."""
    return score_callbacks(reduce_lr_patience=2, early_stopping_patience=3)


def run_epochs(model, callbacks, scores, first_epoch=0):
    """Drive the callbacks through epochs with these validation scores, changing the weights at
    every epoch so that each epoch's weights differ; return the epoch it stopped at, if any."""
    for epoch, score in enumerate(scores, start=first_epoch):
        model.trainable_variables[0].assign(model.trainable_variables[0] + 1.0)
        for callback in callbacks:
            callback.on_epoch_end(epoch, {"val_miou": score})
        if model.stop_training:
            return epoch
    return None


def begin(model, callbacks):
    model.stop_training = False
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()


def test_a_resumed_run_reduces_the_rate_stops_and_restores_the_best_weights_as_one_unbroken(
    tmp_path,
):
    before, after = [0.1, 0.3, 0.2, 0.25], [0.28, 0.5]
    # Unbroken: best 0.3 at epoch 1; the rate halves at epoch 3, training stops at epoch 4.
    keras.utils.set_random_seed(1)
    unbroken = new_model()
    callbacks = [*plateau_callbacks(), checkpoint_callback(tmp_path / "unused.npz")]
    begin(unbroken, callbacks)
    stopped_at = run_epochs(unbroken, callbacks, before + after)
    for callback in callbacks:
        callback.on_train_end()
    assert stopped_at == 4
    assert float(unbroken.optimizer.learning_rate) == pytest.approx(0.0005)

    # Killed after epoch 3 and resumed in a new process (new model, new callbacks).
    path = tmp_path / "checkpoint.npz"
    keras.utils.set_random_seed(1)
    first = new_model()
    carried = plateau_callbacks()
    callbacks = [*carried, checkpoint_callback(path, carried_callbacks=carried)]
    begin(first, callbacks)
    run_epochs(first, callbacks, before)
    callbacks[-1].on_train_end()  # the last write finishes
    assert epochs_completed(path) == 4
    assert not stopped_early(path)

    resumed = new_model()
    assert restore_checkpoint(path, resumed) == 4
    carried = plateau_callbacks()
    callbacks = [*carried, checkpoint_callback(path, carried_callbacks=carried)]
    begin(resumed, callbacks)
    reduce_lr, early_stopping = carried
    assert (reduce_lr.best, reduce_lr.wait) == (pytest.approx(0.3), 0)
    assert (early_stopping.best, early_stopping.wait, early_stopping.best_epoch) == (
        pytest.approx(0.3),
        2,
        1,
    )
    assert float(resumed.optimizer.learning_rate) == pytest.approx(0.0005)
    assert run_epochs(resumed, callbacks, after, first_epoch=4) == stopped_at
    for callback in callbacks:
        callback.on_train_end()
    assert epochs_completed(path) == 5 and stopped_early(path)  # a third start trains no more
    # both end with the weights of epoch 1, not of the epoch they stopped at
    for a, b in zip(unbroken.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    changed = keras.ops.convert_to_numpy(
        resumed.trainable_variables[0] - first.trainable_variables[0]
    )
    np.testing.assert_allclose(changed, -2.0, atol=1e-5)


def test_a_run_killed_after_early_stopping_ended_it_trains_no_more_and_saves_the_best_weights(
    tmp_path,
):
    write_data(tmp_path)
    settings = {
        **SETTINGS,
        "training": {
            **TRAINING,
            "epochs": 6,
            "reduce_lr_patience": 1,
            "early_stopping_patience": 1,
        },
    }
    # What the job left: early stopping ended it at epoch 2 (best at epoch 1) and the
    # checkpoint of that epoch was written, but not the model.
    checkpoint_dir = tmp_path / "checkpoint"
    checkpoint_dir.mkdir()
    (checkpoint_dir / "history.csv").write_text(
        "epoch,loss,val_miou\n0,0.9,0.2\n1,0.8,0.4\n2,0.7,0.3\n"
    )
    model = new_model()
    best_weights = [w + 1.0 for w in model.get_weights()]
    reduce_lr, early_stopping = plateau_callbacks()
    reduce_lr.best, reduce_lr.wait, reduce_lr.cooldown_counter = 0.4, 1, 0
    early_stopping.best, early_stopping.wait, early_stopping.best_epoch = 0.4, 1, 1
    early_stopping.stopped_epoch, early_stopping.best_weights = 2, best_weights
    counters, kept = callback_state([reduce_lr, early_stopping])
    fingerprint = training_fingerprint(tmp_path / "train.npz", tmp_path / "val.npz", settings, 0)
    write_checkpoint(
        checkpoint_dir / "checkpoint.npz", 3, state(model), counters, kept, fingerprint
    )

    info = train_in(tmp_path, settings)
    assert (info["resumed_from_epoch"], info["epochs_run"]) == (3, 3)
    assert info["best_val_miou"] == pytest.approx(0.4)
    saved = keras.models.load_model(tmp_path / "model.keras", compile=False)
    for a, b in zip(saved.get_weights(), best_weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_restored_model_draws_the_dropout_masks_the_trained_one_would_draw_next(tmp_path):
    params = {**PARAMS, "dropout": 0.5}
    rng = np.random.default_rng(0)
    x = rng.random((8, 64, 128, 1), dtype=np.float32)
    y = rng.integers(0, 5, (8, 64, 128), dtype=np.uint8)
    path = tmp_path / "checkpoint.npz"
    trained = new_model(params)
    trained.fit(x, y, batch_size=8, epochs=1, callbacks=[checkpoint_callback(path)], verbose=0)
    restored = new_model(params)
    restore_checkpoint(path, restored)

    seed_states = [v for v in training_state(restored) if "seed_generator" in v.path]
    assert seed_states  # the dropout layers' random state is in the checkpoint
    next_trained = keras.ops.convert_to_numpy(trained(x[:2], training=True))
    next_restored = keras.ops.convert_to_numpy(restored(x[:2], training=True))
    np.testing.assert_array_equal(next_trained, next_restored)
    fresh = keras.ops.convert_to_numpy(new_model(params)(x[:2], training=True))
    assert not np.array_equal(next_trained, fresh)


class Killed(Exception):
    """What stops the training in `killed_after_one_epoch`."""


@pytest.fixture(scope="module")
def killed_after_one_epoch(tmp_path_factory):
    """A folder with train.npz, val.npz and what a training of SETTINGS on them that was killed
    after its first epoch left in checkpoint/."""
    directory = tmp_path_factory.mktemp("killed")
    write_data(directory)
    checkpoint = directory / "checkpoint" / "checkpoint.npz"

    class KillAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                while epochs_completed(checkpoint) < 1:  # written in the background
                    time.sleep(0.01)
                raise Killed

    with pytest.raises(Killed):
        train_in(directory, extra_callbacks=(KillAfterFirstEpoch(),))
    assert saved_fingerprint(checkpoint)
    return directory


@pytest.fixture
def killed(killed_after_one_epoch, tmp_path, caplog):
    """A copy of `killed_after_one_epoch`'s folder, in another place (the output paths are not in
    the fingerprint); training's log is kept."""
    shutil.copytree(killed_after_one_epoch, tmp_path, dirs_exist_ok=True)
    caplog.set_level(logging.INFO, logger="marsseg.training")
    return tmp_path


def test_a_killed_training_rerun_with_the_same_settings_and_data_resumes(killed, caplog):
    info = train_in(killed)
    assert (info["resumed_from_epoch"], info["epochs_run"]) == (1, 2)
    assert "Resuming from epoch 1" in caplog.text
    assert "different settings or data" not in caplog.text


class LearningRates(keras.callbacks.Callback):
    """Records the optimizer's learning rate at the start of each epoch."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_epoch_begin(self, epoch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate))


@pytest.mark.parametrize("change", ["learning rate", "training data", "checkpoint of before"])
def test_a_checkpoint_of_other_settings_or_data_is_not_resumed(killed, caplog, change):
    settings = SETTINGS
    if change == "learning rate":
        settings = {**SETTINGS, "training": {**SETTINGS["training"], "learning_rate": 0.0001}}
    if change == "training data":
        write_data(killed, seed=1)
    if change == "checkpoint of before":  # checkpoints held no fingerprint then
        path = killed / "checkpoint" / "checkpoint.npz"
        with np.load(path) as saved:
            arrays = {name: saved[name] for name in saved.files if name != "fingerprint"}
        np.savez(path, **arrays)
        assert saved_fingerprint(path) is None

    learning_rates = LearningRates()
    info = train_in(killed, settings, extra_callbacks=(learning_rates,))
    assert (info["resumed_from_epoch"], info["epochs_run"]) == (0, 2)
    assert "belongs to different settings or data: training starts afresh" in caplog.text
    assert "Resuming" not in caplog.text
    rate = settings["training"]["learning_rate"]  # not the killed run's
    assert learning_rates.rates == pytest.approx([rate, rate])
    with open(killed / "history.csv", newline="") as handle:  # nor its history's rows
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["0", "1"]


def test_the_history_logs_each_epochs_learning_rate_and_info_its_best_epoch(tmp_path):
    write_data(tmp_path)
    training = {**SETTINGS["training"], "epochs": 4, "reduce_lr_patience": 1}
    learning_rates = LearningRates()
    info = train_in(tmp_path, {**SETTINGS, "training": training}, (learning_rates,))
    with open(tmp_path / "history.csv", newline="") as handle:
        history = list(csv.DictReader(handle))
    assert [float(row["learning_rate"]) for row in history] == pytest.approx(learning_rates.rates)
    scores = [float(row["val_miou"]) for row in history]
    assert info["best_epoch"] == scores.index(max(scores))
    assert info["best_val_miou"] == pytest.approx(max(scores))
