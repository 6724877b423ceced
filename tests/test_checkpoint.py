"""The training checkpoint: a run restored from it carries on with the same model and optimizer
state, and the file on disk is always a whole checkpoint."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from marsseg.checkpoint import (
    checkpoint_callback,
    epochs_completed,
    restore_checkpoint,
    training_state,
    write_checkpoint,
)
from marsseg.models.losses import make_loss
from marsseg.training import compiled_model

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
