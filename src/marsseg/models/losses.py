"""Losses for sparse integer masks (N, H, W) against softmax outputs (N, H, W, C).

`make_loss(loss_cfg, num_classes)` returns a registered, serialisable `keras.losses.Loss`:

- ``focal``: seed 001's weighted focal loss
  ``L = -1/N sum_i sum_c w_c y_ic (1 - p_ic)^gamma log p_ic`` over all N pixels of the batch
  (Keras' `CategoricalFocalCrossentropy` with ``alpha = class_weights`` on one-hot targets).
- ``sparse_categorical_crossentropy``: ``-1/N sum_i w_{y_i} log p_{i,y_i}`` (Keras' own SCE).
- ``dice``: Keras' `Dice` per class over the whole batch (soft Dice on one-hot targets), averaged
  over the classes with weights ``w_c / sum w`` (classes absent from both truth and prediction
  left out); pixels whose true class has weight 0 (background) are left out of every class's sums.
- ``combined``: ``sum_k weight_k * L_k`` over ``components``; a component without its own
  ``gamma``/``class_weights`` inherits the combined loss's.

``class_weights`` defaults to all ones; ``gamma`` to 2.0 (Keras' default; seed 001 used 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import keras
from keras import ops

LOSS_NAMES: tuple[str, ...] = ("focal", "sparse_categorical_crossentropy", "dice", "combined")
# `background_weight`/`max_weight` only parametrise `class_weights: inverse_frequency`, which the
# training code resolves into numbers before calling make_loss; they are accepted and ignored here.
_KEYS = {
    "name",
    "gamma",
    "class_weights",
    "weight",
    "components",
    "background_weight",
    "max_weight",
}
DEFAULT_GAMMA = 2.0


def _normalise_cfg(cfg: Mapping, num_classes: int, inherited: Mapping | None = None) -> dict:
    """Validate one loss config and fill in gamma/class_weights (ValueError when bad)."""
    if not isinstance(cfg, Mapping) or "name" not in cfg:
        raise ValueError(f"a loss config must be a mapping with a 'name', got {cfg!r}")
    unknown = sorted(set(cfg) - _KEYS)
    if unknown:
        raise ValueError(
            f"unknown loss key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(_KEYS))}"
        )
    name = cfg["name"]
    if name not in LOSS_NAMES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSS_NAMES)}")
    inherited = inherited or {}
    weights = cfg.get("class_weights", inherited.get("class_weights"))
    if weights is None:
        weights = [1.0] * num_classes
    if isinstance(weights, str):
        raise ValueError(
            f"class_weights {weights!r} must be resolved into numbers before make_loss "
            "(see marsseg.models.inverse_frequency_weights)"
        )
    weights = [float(w) for w in weights]
    if len(weights) != num_classes or not all(0 <= w < math.inf for w in weights):
        raise ValueError(
            f"class_weights must be {num_classes} finite non-negative numbers, got {weights!r}"
        )
    gamma = float(cfg.get("gamma", inherited.get("gamma", DEFAULT_GAMMA)))
    if not 0 <= gamma < math.inf:
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma}")
    out = {"name": name, "gamma": gamma, "class_weights": weights}
    if name == "combined":
        components = cfg.get("components")
        if not components:
            raise ValueError("the 'combined' loss needs a non-empty list of 'components'")
        out["components"] = []
        for component in components:
            resolved = _normalise_cfg(component, num_classes, out)
            resolved["weight"] = float(component.get("weight", 1.0))
            if not 0 <= resolved["weight"] < math.inf:
                raise ValueError(
                    f"a component's weight must be a finite number >= 0, got {resolved['weight']}"
                )
            out["components"].append(resolved)
    return out


def _one_hot(y_true, num_classes: int):
    """Sparse targets (N, H, W) or (N, H, W, 1), any dtype, as int labels and float one-hot."""
    labels = ops.cast(y_true, "int32")
    if len(labels.shape) == 4 and labels.shape[-1] == 1:
        labels = ops.squeeze(labels, axis=-1)
    return labels, ops.one_hot(labels, num_classes, dtype="float32")


def _pixel_weights(labels, class_weights):
    return ops.take(ops.convert_to_tensor(class_weights, dtype="float32"), labels)


def focal_loss(y_true, y_pred, gamma: float, class_weights) -> keras.KerasTensor:
    _, one_hot = _one_hot(y_true, len(class_weights))
    per_pixel = keras.losses.categorical_focal_crossentropy(
        one_hot, y_pred, alpha=ops.convert_to_tensor(class_weights, "float32"), gamma=gamma
    )
    return ops.mean(per_pixel)


def sce_loss(y_true, y_pred, class_weights):
    labels, _ = _one_hot(y_true, len(class_weights))
    per_pixel = keras.losses.sparse_categorical_crossentropy(labels, y_pred)
    return ops.mean(per_pixel * _pixel_weights(labels, class_weights))


def dice_loss(y_true, y_pred, class_weights):
    labels, one_hot = _one_hot(y_true, len(class_weights))
    keep = ops.expand_dims(ops.cast(_pixel_weights(labels, class_weights) > 0, "float32"), -1)
    y_true, y_pred = one_hot * keep, y_pred * keep
    per_class = keras.losses.dice(y_true, y_pred, axis=(0, 1, 2))
    # a class with no true and no predicted pixel is left out of the mean (not a 0/0 "loss 1")
    present = ops.cast(ops.sum(y_true + y_pred, axis=(0, 1, 2)) > 0, "float32")
    w = ops.convert_to_tensor(class_weights, "float32") * present
    return ops.sum(per_class * w) / ops.maximum(ops.sum(w), keras.config.epsilon())


def _evaluate(cfg: dict, y_true, y_pred):
    name = cfg["name"]
    if name == "focal":
        return focal_loss(y_true, y_pred, cfg["gamma"], cfg["class_weights"])
    if name == "sparse_categorical_crossentropy":
        return sce_loss(y_true, y_pred, cfg["class_weights"])
    if name == "dice":
        return dice_loss(y_true, y_pred, cfg["class_weights"])
    return sum(c["weight"] * _evaluate(c, y_true, y_pred) for c in cfg["components"])


@keras.saving.register_keras_serializable(package="marsseg")
class SegmentationLoss(keras.losses.Loss):
    """The configured loss as a Keras `Loss`; its value is already the batch mean (a scalar)."""

    def __init__(self, loss_cfg: Mapping, num_classes: int = 5, name: str | None = None, **kw):
        self.loss_cfg = dict(loss_cfg)
        self.num_classes = int(num_classes)
        self._resolved = _normalise_cfg(self.loss_cfg, self.num_classes)
        super().__init__(name=name or f"{self._resolved['name']}_loss", **kw)

    def call(self, y_true, y_pred):
        return _evaluate(self._resolved, y_true, ops.cast(y_pred, "float32"))

    def get_config(self):
        config = super().get_config()
        config.update({"loss_cfg": self.loss_cfg, "num_classes": self.num_classes})
        return config


def make_loss(loss_cfg: Mapping, num_classes: int = 5) -> SegmentationLoss:
    """The loss named in `loss_cfg` for sparse targets and softmax outputs (see module doc)."""
    return SegmentationLoss(loss_cfg, num_classes=num_classes)
