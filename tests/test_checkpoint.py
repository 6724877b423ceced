"""The training checkpoint: a run restored from it carries on with the same model and optimizer
state, and the file on disk is always a whole checkpoint."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from marsseg.checkpoint import (
    callback_state,
    checkpoint_callback,
    epochs_completed,
    restore_checkpoint,
    stopped_early,
    training_state,
    write_checkpoint,
)
from marsseg.models.losses import make_loss
from marsseg.training import compiled_model, score_callbacks

TRAINING = {
    "batch_size": 8,
    "micro_batch_size": 4,  # gradient accumulators in the optimizer's state too
    "learning_rate": 0.001,
    "weight_decay": 0.001,
}
PARAMS = {"filters": [4, 8], "dilation_rates": [1, 2]}


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
    from marsseg.io import save_arrays
    from marsseg.training import train_member

    rng = np.random.default_rng(0)
    for name, n in (("train", 16), ("val", 8)):
        masks = rng.integers(0, 5, (n, 64, 128), dtype=np.uint8)
        save_arrays(tmp_path / f"{name}.npz", images=(masks * 50).astype(np.uint8), masks=masks)
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
    write_checkpoint(checkpoint_dir / "checkpoint.npz", 3, state(model), counters, kept)

    info = train_member(
        train_npz=str(tmp_path / "train.npz"),
        val_npz=str(tmp_path / "val.npz"),
        model_out=str(tmp_path / "model.keras"),
        history_out=str(tmp_path / "history.csv"),
        info_out=str(tmp_path / "info.json"),
        checkpoint_dir=str(checkpoint_dir),
        architecture="unet",
        params=PARAMS,
        loss={"name": "sparse_categorical_crossentropy"},
        training={**TRAINING, "epochs": 6, "reduce_lr_patience": 1, "early_stopping_patience": 1},
        seed=0,
    )
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
