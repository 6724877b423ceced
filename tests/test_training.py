"""Training settings that reach the model."""

from __future__ import annotations

import keras

from marsseg.models.losses import make_loss
from marsseg.training import compiled_model

TRAINING = {"learning_rate": 0.001, "weight_decay": 0.001}
PARAMS = {"filters": [4, 8], "dilation_rates": [1, 2]}


def batch_norm_momenta(model) -> set[float]:
    return {
        layer.momentum
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }


def test_batch_norm_momentum_setting_reaches_every_batch_norm_layer():
    loss = make_loss({"name": "sparse_categorical_crossentropy"}, num_classes=5)
    default = compiled_model("unet", PARAMS, loss, TRAINING, num_classes=5)
    assert batch_norm_momenta(default) == {0.99}
    fast = compiled_model(
        "stacked", PARAMS, loss, {**TRAINING, "batch_norm_momentum": 0.9}, num_classes=5
    )
    assert batch_norm_momenta(fast) == {0.9}
    assert (
        keras.layers.BatchNormalization.from_config(
            [layer for layer in fast.layers if "bn" in layer.name][0].get_config()
        ).momentum
        == 0.9
    )
