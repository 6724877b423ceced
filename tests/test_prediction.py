"""Prediction: flip test-time augmentation and soft-vote ensembles, with tiny Keras models."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from marsseg.prediction import mean_probabilities, predict_labels  # noqa: E402
from marsseg.training import images_to_input  # noqa: E402


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


def test_tta_changes_the_output_of_a_model_that_is_not_flip_equivariant(images):
    """The control for the test above: TTA does average over flips."""
    model = conv_softmax(kernel_size=3, seed=2)
    plain = mean_probabilities([model], images, batch_size=2, tta=False)
    with_tta = mean_probabilities([model], images, batch_size=2, tta=True)
    assert np.abs(with_tta - plain).max() > 1e-2


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
