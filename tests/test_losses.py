"""The losses against hand-computed values, and seed 001's inverse-frequency class weights."""

import math

import keras
import numpy as np
import pytest

from marsseg.models import inverse_frequency_weights
from marsseg.models.losses import SegmentationLoss, make_loss


def value(loss, y_true, y_pred) -> float:
    return float(
        keras.ops.convert_to_numpy(loss(np.asarray(y_true), np.asarray(y_pred, "float32")))
    )


# One image of 1x2 pixels: true Soil, then true Big Rock.
Y_TRUE = np.array([[[1, 4]]])
Y_PRED = np.array([[[[0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.2, 0.1, 0.3, 0.3]]]])


def test_focal_with_class_weights_by_hand():
    loss = make_loss({"name": "focal", "gamma": 0.5, "class_weights": [0, 1, 2, 3, 10]})
    # L = -1/N sum_i w_{y_i} (1 - p_{i,y_i})^gamma log p_{i,y_i}, N = 2 pixels
    soil = 1 * (1 - 0.6) ** 0.5 * -math.log(0.6)  # 0.323078
    big_rock = 10 * (1 - 0.3) ** 0.5 * -math.log(0.3)  # 10.073157
    assert (soil + big_rock) / 2 == pytest.approx(5.198117, abs=1e-6)
    assert value(loss, Y_TRUE, Y_PRED) == pytest.approx(5.198117, rel=1e-5)


def test_focal_background_weight_zero_still_counts_the_pixel():
    """A weight-0 pixel adds nothing but is in N (seed 001 divides by all pixels)."""
    loss = make_loss({"name": "focal", "gamma": 0.5, "class_weights": [0, 1, 2, 3, 10]})
    y_true = np.array([[[1, 4, 0, 0]]])
    y_pred = np.concatenate([Y_PRED, Y_PRED], axis=2)
    assert value(loss, y_true, y_pred) == pytest.approx(5.198117 / 2, rel=1e-5)


def test_focal_matches_numpy_formula_on_random_batch(rng):
    weights = [0.0, 0.5, 1.0, 1.5, 8.0]
    logits = rng.normal(size=(3, 4, 6, 5))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    y = rng.integers(0, 5, size=(3, 4, 6))
    p_true = np.take_along_axis(p, y[..., None], -1)[..., 0]
    expected = np.mean(np.take(weights, y) * (1 - p_true) ** 2.0 * -np.log(p_true))
    loss = make_loss({"name": "focal", "gamma": 2.0, "class_weights": weights})
    assert value(loss, y, p) == pytest.approx(expected, rel=1e-5)
    # integer targets with a trailing channel axis (N, H, W, 1) give the same value
    assert value(loss, y[..., None].astype("float32"), p) == pytest.approx(expected, rel=1e-5)


def test_focal_gamma_zero_is_weighted_sce():
    cfg = {"gamma": 0.0, "class_weights": [0, 1, 2, 3, 10]}
    focal = value(make_loss({"name": "focal", **cfg}), Y_TRUE, Y_PRED)
    sce = value(make_loss({"name": "sparse_categorical_crossentropy", **cfg}), Y_TRUE, Y_PRED)
    expected = (-math.log(0.6) - 10 * math.log(0.3)) / 2  # 6.275270
    assert focal == pytest.approx(expected, rel=1e-5)
    assert sce == pytest.approx(expected, rel=1e-5)


def test_sce_sanity_values():
    uniform = np.full((1, 2, 2, 5), 0.2)
    y = np.array([[[1, 2], [0, 3]]])
    sce = make_loss({"name": "sparse_categorical_crossentropy"})
    assert value(sce, y, uniform) == pytest.approx(math.log(5), rel=1e-5)
    no_bg = make_loss({"name": "sparse_categorical_crossentropy", "class_weights": [0, 1, 1, 1, 1]})
    assert value(no_bg, y, uniform) == pytest.approx(math.log(5) * 3 / 4, rel=1e-5)
    perfect = np.eye(5)[y]
    assert value(sce, y, perfect) == pytest.approx(0.0, abs=1e-5)


def test_dice_sanity_values():
    dice = make_loss({"name": "dice"}, num_classes=3)
    y = np.array([[[1, 2]]])
    assert value(dice, y, np.eye(3)[y]) == pytest.approx(0.0, abs=1e-5)  # perfect
    assert value(dice, y, np.eye(3)[[[[2, 0]]]]) == pytest.approx(1.0, abs=1e-5)  # all wrong
    # a class absent from both truth and prediction leaves the mean (no 0/0 "loss 1")
    assert value(dice, np.array([[[1, 1]]]), np.eye(3)[[[[1, 2]]]]) == pytest.approx(
        (1 - 2 / 3 + 1) / 2, rel=1e-5
    )
    # uniform 1/3: class 0 has no true pixel -> dice 0, loss 1; classes 1 and 2:
    # 2 * (1/3) / (1 + 2/3) = 0.4 -> loss 0.6; mean (1 + 0.6 + 0.6) / 3
    uniform = np.full((1, 1, 2, 3), 1 / 3)
    assert value(dice, y, uniform) == pytest.approx(2.2 / 3, rel=1e-5)
    # background weight 0: the background pixel leaves every sum and class 0 leaves the mean
    no_bg = make_loss({"name": "dice", "class_weights": [0, 1, 1]}, num_classes=3)
    assert value(no_bg, np.array([[[1, 2, 0]]]), np.full((1, 1, 3, 3), 1 / 3)) == pytest.approx(
        0.6, rel=1e-5
    )


def test_combined_is_the_weighted_sum_and_components_inherit():
    top = {"gamma": 0.5, "class_weights": [0, 1, 2, 3, 10]}
    combined = make_loss(
        {
            "name": "combined",
            **top,
            "components": [{"name": "focal", "weight": 2.0}, {"name": "dice", "weight": 0.5}],
        }
    )
    focal = value(make_loss({"name": "focal", **top}), Y_TRUE, Y_PRED)
    dice = value(make_loss({"name": "dice", **top}), Y_TRUE, Y_PRED)
    assert focal == pytest.approx(5.198117, rel=1e-5)
    assert value(combined, Y_TRUE, Y_PRED) == pytest.approx(2 * focal + 0.5 * dice, rel=1e-5)


def test_loss_serialises_and_round_trips():
    loss = make_loss({"name": "focal", "gamma": 0.5, "class_weights": [0, 1, 2, 3, 10]})
    assert isinstance(loss, SegmentationLoss)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert restored.get_config() == loss.get_config()
    assert value(restored, Y_TRUE, Y_PRED) == pytest.approx(5.198117, rel=1e-5)


@pytest.mark.parametrize(
    "cfg, needle",
    [
        ({"name": "tversky"}, "tversky"),
        ({"name": "focal", "alpha": 0.25}, "alpha"),
        ({"name": "focal", "class_weights": [1, 1]}, "class_weights must be 5 finite non-negative"),
        ({"name": "dice", "class_weights": [0, 1, 1, -1, 1]}, "5 finite non-negative numbers, got"),
        ({"name": "focal", "gamma": -0.5}, "gamma must be a finite number >= 0, got -0.5"),
        ({"name": "focal", "class_weights": "inverse_frequency"}, "inverse_frequency"),
        ({"name": "combined"}, "components"),
        ({"name": "focal", "class_weights": [1, 1, 1, 1, float("nan")]}, "finite non-negative"),
        ({"name": "focal", "gamma": float("nan")}, "gamma must be a finite number >= 0, got nan"),
        (
            {"name": "combined", "components": [{"name": "dice", "weight": -1}]},
            "component's weight must be a finite number >= 0, got -1.0",
        ),
    ],
)
def test_bad_loss_configs_raise(cfg, needle):
    with pytest.raises(ValueError, match=needle):
        make_loss(cfg)


def test_inverse_frequency_weights_by_hand():
    masks = np.array([[[0, 0, 1, 1, 1], [1, 2, 2, 2, 4]]])  # 10 pixels, no Sand
    # shares in percent: 20, 40, 30, 0, 10 -> 1/percent, Sand absent -> 0, background -> 0
    np.testing.assert_allclose(
        inverse_frequency_weights(masks), [0.0, 1 / 40, 1 / 30, 0.0, 1 / 10], rtol=1e-12
    )
    np.testing.assert_allclose(
        inverse_frequency_weights(masks, background_weight=None, max_weight=0.03),
        [0.03, 1 / 40, 0.03, 0.0, 0.03],
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        inverse_frequency_weights(masks, background_weight=0.5), [0.5, 1 / 40, 1 / 30, 0, 0.1]
    )
    binary = (masks == 4).astype(np.uint8)  # 9 of 10 not Big Rock
    np.testing.assert_allclose(
        inverse_frequency_weights(binary, num_classes=2, background_weight=None), [1 / 90, 1 / 10]
    )


def test_inverse_frequency_reproduces_seed_001_weights():
    """Seed 001's [0, .0359, .0523, .0663, 9.272] are 1 / (class share in percent)."""
    counts = [378_340, 278_550, 191_200, 150_830, 1_080]  # shares of 1,000,000 pixels
    masks = np.repeat(np.arange(5, dtype=np.uint8), counts)
    weights = inverse_frequency_weights(masks)
    np.testing.assert_allclose(weights, [0.0, 0.0359, 0.0523, 0.0663, 9.272], rtol=2e-3)


def test_inverse_frequency_rejects_bad_labels():
    with pytest.raises(ValueError, match="0..4"):
        inverse_frequency_weights(np.array([[0, 5]]))
