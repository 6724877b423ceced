"""Prediction: flip test-time augmentation and soft-vote ensembles, with tiny Keras models."""

import keras
import numpy as np
import pytest

from marsseg import BIG_ROCK
from marsseg.io import load_arrays, save_arrays
from marsseg.prediction import (
    mean_probabilities,
    predict_files,
    predict_labels,
    soft_vote_weights,
)
from marsseg.training import images_to_input


def conv_softmax(kernel_size: int, seed: int):
    """Conv2D(5 classes) + softmax with random weights: flip-equivariant when kernel_size is 1."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((64, 128, 1))
    logits = keras.layers.Conv2D(5, kernel_size, padding="same", bias_initializer="random_normal")(
        inputs
    )
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    # A large input scale makes the classes differ clearly from pixel to pixel.
    model.layers[1].set_weights([w * 20 for w in model.layers[1].get_weights()])
    return model


def big_rock_helper(weight: float, bias: float):
    """A binary Big Rock helper (softmax over "not Big Rock", "Big Rock") whose Big Rock
    probability at a pixel of model input x (grey / 255) is sigmoid(weight * x + bias)."""
    inputs = keras.Input((64, 128, 1))
    conv = keras.layers.Conv2D(2, 1)
    model = keras.Model(inputs, keras.layers.Softmax()(conv(inputs)))
    conv.set_weights([np.array([0.0, weight]).reshape(1, 1, 1, 2), np.array([0.0, bias])])
    return model


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (3, 64, 128), dtype=np.uint8)


def test_tta_of_a_flip_equivariant_model_equals_no_tta(images):
    model = conv_softmax(kernel_size=1, seed=1)
    plain = mean_probabilities([model], images, batch_size=2, tta=False)
    with_tta = mean_probabilities([model], images, batch_size=2, tta=True)
    np.testing.assert_allclose(with_tta, plain, atol=1e-6)
    labels = predict_labels([model], images, batch_size=2)["labels"]
    assert len(np.unique(labels)) > 1  # a real prediction, not one class everywhere
    np.testing.assert_array_equal(
        predict_labels([model], images, batch_size=2, tta=True)["labels"], labels
    )


def test_tta_of_a_model_that_is_not_flip_equivariant_is_its_mean_over_the_four_flips(images):
    """The control for the test above: TTA does average over the flips, each flipped back."""
    model = conv_softmax(kernel_size=3, seed=2)
    plain = mean_probabilities([model], images, batch_size=2, tta=False)
    with_tta = mean_probabilities([model], images, batch_size=2, tta=True)
    assert np.abs(with_tta - plain).max() > 1e-2
    x = images_to_input(images)
    keep, reverse = slice(None), slice(None, None, -1)
    by_hand = [  # each flip's prediction flipped back
        model.predict(x[:, rows, columns], verbose=0)[:, rows, columns]
        for rows in (keep, reverse)
        for columns in (keep, reverse)
    ]
    np.testing.assert_allclose(with_tta, np.mean(by_hand, axis=0), atol=1e-6)


def test_an_ensemble_of_one_member_is_that_member(images):
    model = conv_softmax(kernel_size=3, seed=3)
    probabilities = model.predict(images_to_input(images), verbose=0)
    np.testing.assert_allclose(
        mean_probabilities([model], images, batch_size=2, tta=False), probabilities, atol=1e-6
    )
    predicted = predict_labels([model], images, batch_size=2, chunk=2)
    np.testing.assert_array_equal(predicted["labels"], probabilities.argmax(-1))
    np.testing.assert_array_equal(
        predicted["labels_no_background"], 1 + probabilities[..., 1:].argmax(-1)
    )


def test_an_ensemble_averages_its_members_probabilities(images):
    first, second = conv_softmax(kernel_size=3, seed=4), conv_softmax(kernel_size=1, seed=5)
    x = images_to_input(images)
    expected = (first.predict(x, verbose=0) + second.predict(x, verbose=0)) / 2
    np.testing.assert_allclose(
        mean_probabilities([first, second], images, batch_size=2, tta=False), expected, atol=1e-6
    )


def test_soft_vote_weights_weigh_each_variant_equally():
    assert soft_vote_weights([1]) == [1.0]
    assert soft_vote_weights([3]) == pytest.approx([1 / 3] * 3)
    assert soft_vote_weights([2, 1]) == pytest.approx([0.25, 0.25, 0.5])
    with pytest.raises(ValueError, match="at least one model"):
        soft_vote_weights([2, 0])


def test_an_ensemble_averages_its_variants_not_their_members(images, tmp_path):
    """An ensemble of a 2-member variant (a, b) and a 1-member variant (c) predicts from
    ((a + b) / 2 + c) / 2, as the ensemble's two variants each count once: not from
    (a + b + c) / 3, which gives the first variant two thirds of the vote."""
    models = [conv_softmax(kernel_size=3, seed=seed) for seed in (11, 12, 13)]
    paths = []
    for i, model in enumerate(models):
        paths.append(str(tmp_path / f"member{i}.keras"))
        model.save(paths[-1])
    a, b, c = (model.predict(images_to_input(images), verbose=0) for model in models)
    expected = ((a + b) / 2 + c) / 2
    pooled = (a + b + c) / 3
    assert (expected.argmax(-1) != pooled.argmax(-1)).any()  # the two votes differ here
    np.testing.assert_allclose(
        mean_probabilities(models, images, 2, tta=False, weights=[0.25, 0.25, 0.5]),
        expected,
        atol=1e-6,
    )
    save_arrays(tmp_path / "images.npz", images=images)
    out = tmp_path / "predicted.npz"
    split = str(tmp_path / "images.npz")
    predict_files(paths, [], split, split, str(out), batch_size=2, tta=False, part_sizes=[2, 1])
    predicted = load_arrays(out)
    for name in ("val", "test"):
        np.testing.assert_array_equal(predicted[f"{name}_labels"], expected.argmax(-1))
        np.testing.assert_array_equal(
            predicted[f"{name}_labels_no_background"], 1 + expected[..., 1:].argmax(-1)
        )
    with pytest.raises(ValueError, match="do not add up to 3 models"):
        predict_files(paths, [], split, split, str(out), 2, False, part_sizes=[1, 1])


def test_one_pass_gives_the_label_maps_without_and_with_tta(images):
    model = conv_softmax(kernel_size=3, seed=6)
    maps = predict_labels([model], images, batch_size=2, tta=True, chunk=2)
    assert sorted(maps) == [
        "labels",
        "labels_no_background",
        "tta_labels",
        "tta_labels_no_background",
    ]
    plain = mean_probabilities([model], images, batch_size=2, tta=False)
    flipped = mean_probabilities([model], images, batch_size=2, tta=True)
    np.testing.assert_array_equal(maps["labels"], plain.argmax(-1))
    np.testing.assert_array_equal(maps["tta_labels"], flipped.argmax(-1))
    np.testing.assert_array_equal(maps["tta_labels_no_background"], 1 + flipped[..., 1:].argmax(-1))
    assert (maps["labels"] != maps["tta_labels"]).any()  # the two differ for this model
    assert sorted(predict_labels([model], images, batch_size=2)) == [
        "labels",
        "labels_no_background",
    ]


def test_big_rock_helpers_set_big_rock_where_confident_and_nowhere_else(images):
    model = conv_softmax(kernel_size=1, seed=7)  # flip-equivariant: TTA maps equal the plain
    plain = predict_labels([model], images, batch_size=2, tta=True)
    assert (plain["labels"] != BIG_ROCK).mean() > 0.5  # room for the helpers to change it

    def with_helpers(helpers, threshold=0.5):
        return predict_labels(
            [model],
            images,
            batch_size=2,
            tta=True,
            big_rock_helpers=helpers,
            big_rock_threshold=threshold,
            chunk=2,
        )

    always, never = big_rock_helper(0.0, 10.0), big_rock_helper(0.0, -10.0)
    for key, labels in with_helpers([always]).items():
        assert (labels == BIG_ROCK).all(), key
    for key, labels in with_helpers([never]).items():
        np.testing.assert_array_equal(labels, plain[key], err_msg=key)
    # the threshold: P(Big Rock) = sigmoid(1) = 0.73 is confident at 0.5, not at 0.9
    sure_enough = big_rock_helper(0.0, 1.0)
    assert (with_helpers([sure_enough], threshold=0.5)["labels"] == BIG_ROCK).all()
    for key, labels in with_helpers([sure_enough], threshold=0.9).items():
        np.testing.assert_array_equal(labels, plain[key], err_msg=key)
    # confident on the bright pixels only (grey >= 128), through the mean of two helpers:
    # sigmoid(80 x - 40 +- 5) / 2 summed is at least 0.5 exactly where 80 x - 40 >= 0
    bright = images >= 128
    assert 0.3 < bright.mean() < 0.7
    helpers = [big_rock_helper(80.0, -40.0 + 5.0), big_rock_helper(80.0, -40.0 - 5.0)]
    for key, labels in with_helpers(helpers).items():
        np.testing.assert_array_equal(labels, np.where(bright, BIG_ROCK, plain[key]), err_msg=key)


def test_the_chunk_size_changes_memory_not_the_label_maps(images):
    """predict_labels works a chunk of images at a time to bound its memory (CHUNK_IMAGES on
    the course's test set); chunks that split the images differently give the same maps."""
    model = conv_softmax(kernel_size=3, seed=7)
    whole = predict_labels([model], images, batch_size=1, tta=True, chunk=len(images))
    for chunk in (1, 2):  # 3 images: chunks of 1, 1, 1 and of 2, 1
        maps = predict_labels([model], images, batch_size=1, tta=True, chunk=chunk)
        assert sorted(maps) == sorted(whole)
        for key in whole:
            np.testing.assert_array_equal(maps[key], whole[key])
