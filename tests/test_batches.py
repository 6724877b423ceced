"""The training feed: every image once per epoch, as the model input images_to_input makes, in
an order set by the seed and the epoch, and on TensorFlow a tf.data pipeline with autotuning off
(its iterators otherwise idle at each epoch's end), without a GeneratorDataset (its first use
retunes malloc for the whole process, and the steps then cost a third more CPU), that cuts the
batches in the graph (Python per batch cost 6 % of an epoch)."""

from collections import Counter

import keras
import numpy as np
import pytest

from marsseg.batches import (
    epoch_order,
    images_to_input,
    predict_in_batches,
    training_batches,
)


def test_epoch_order_is_a_permutation_set_by_seed_and_epoch():
    order = epoch_order(10, seed=3, epoch=0)
    assert sorted(order) == list(range(10))
    np.testing.assert_array_equal(order, epoch_order(10, seed=3, epoch=0))
    assert not np.array_equal(order, epoch_order(10, seed=3, epoch=1))
    assert not np.array_equal(order, epoch_order(10, seed=4, epoch=0))


def _epochs(feed, n_epochs: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """The batches of `n_epochs` passes, as Keras would draw them (one iterator per epoch)."""
    if isinstance(feed, keras.utils.PyDataset):
        passes = []
        for _ in range(n_epochs):
            passes.append([feed[i] for i in range(len(feed))])
            feed.on_epoch_end()
        return passes
    return [[tuple(np.asarray(t) for t in batch) for batch in feed] for _ in range(n_epochs)]


@pytest.fixture(params=["this backend", "a PyDataset"])
def feed_kind(request, monkeypatch):
    """Both feeds on whatever backend runs the tests: its own, and the PyDataset that other
    backends than TensorFlow get."""
    if request.param == "a PyDataset":
        monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    return request.param


def test_training_batches_give_every_image_once_per_epoch_in_epoch_order(feed_kind):
    n, batch_size, seed = 10, 4, 7
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 2, 3), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n) * 25  # which image
    y = np.arange(n, dtype=np.uint8).reshape(n, 1, 1) * np.ones((1, 2, 3), np.uint8)
    passes = _epochs(training_batches(images, y, batch_size, seed), 2)
    for epoch, batches in enumerate(passes):
        assert [len(xb) for xb, _ in batches] == [4, 4, 2]
        assert batches[0][0].shape == (4, 2, 3, 1)
        assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.uint8
        labels = np.concatenate([yb[:, 0, 0] for _, yb in batches]).astype(int)
        # each batch is a slice of the epoch's order, sorted (contiguous reads) ...
        order = epoch_order(n, seed, epoch)
        expected = np.concatenate([np.sort(order[i : i + batch_size]) for i in (0, 4, 8)])
        np.testing.assert_array_equal(labels, expected)
        # ... of the model inputs images_to_input makes, to the bit, beside their masks
        np.testing.assert_array_equal(
            np.concatenate([xb for xb, _ in batches]), images_to_input(images[expected])
        )
    # a run resumed at epoch 1 sees epoch 1's order first
    resumed = _epochs(training_batches(images, y, batch_size, seed, first_epoch=1), 1)[0]
    np.testing.assert_array_equal(
        np.concatenate([xb for xb, _ in resumed]), np.concatenate([xb for xb, _ in passes[1]])
    )


def _ops_in(dataset) -> Counter:
    """How many of each op a tf.data pipeline's graph holds, its functions' included."""
    import tensorflow as tf

    serialized = tf.raw_ops.DatasetToGraphV2(
        input_dataset=dataset._variant_tensor,
        external_state_policy=1,  # 1: ignore state
    )
    graph = tf.compat.v1.GraphDef.FromString(serialized.numpy())
    return Counter(node.op for node in graph.node) + Counter(
        node.op for function in graph.library.function for node in function.node_def
    )


def test_on_tensorflow_the_feed_is_tf_data_that_cuts_batches_in_the_graph():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the tf.data pipeline is TensorFlow's")
    images, y = np.zeros((6, 2, 3), np.uint8), np.zeros((6, 2, 3), np.uint8)
    feed = training_batches(images, y, 4, seed=0)
    assert feed.options().autotune.enabled is False
    assert int(feed.cardinality()) == 2  # Keras knows the epoch's length before it ends
    ops = _ops_in(feed)
    assert "GeneratorDataset" not in ops
    assert "GatherV2" in ops  # the graph cuts the batches ...
    assert ops["PyFunc"] == 1  # ... and numpy draws the epoch's order
    # the batch size is static where every batch is whole (faster steps), else None
    assert feed.element_spec[0].shape.as_list() == [None, 2, 3, 1]
    whole = training_batches(np.zeros((8, 2, 3), np.uint8), np.zeros((8, 2, 3)), 4, seed=0)
    assert whole.element_spec[0].shape.as_list() == [4, 2, 3, 1]
    assert whole.element_spec[1].shape.as_list() == [4, 2, 3]
    assert len(list(whole)) == 2


def test_predict_in_batches_equals_predict():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 6, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same")(inputs))
    x = np.random.default_rng(0).random((5, 4, 6, 1), dtype=np.float32)
    expected = model.predict(x, batch_size=2, verbose=0)
    np.testing.assert_allclose(predict_in_batches(model, x, 2), expected, atol=1e-6)
    np.testing.assert_allclose(
        predict_in_batches(model, x[:, ::-1], 2),
        model.predict(x[:, ::-1].copy(), verbose=0),
        atol=1e-6,
    )  # a flipped view, as TTA passes it
