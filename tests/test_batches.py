"""The training feed: every image once per epoch, in an order set by the seed and the epoch, and
on TensorFlow a tf.data pipeline with autotuning off (its iterators otherwise idle at each
epoch's end) and without a GeneratorDataset (its first use retunes malloc for the whole
process, and the steps then cost a third more CPU)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from marsseg.batches import epoch_order, predict_in_batches, training_batches  # noqa: E402


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
    x = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1) * np.ones((1, 2, 3, 1), np.float32)
    y = np.arange(n, dtype=np.uint8).reshape(n, 1, 1) * np.ones((1, 2, 3), np.uint8)
    passes = _epochs(training_batches(x, y, batch_size, seed), 2)
    for epoch, batches in enumerate(passes):
        assert [len(xb) for xb, _ in batches] == [4, 4, 2]
        assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.uint8
        seen = np.concatenate([xb[:, 0, 0, 0] for xb, _ in batches]).astype(int)
        labels = np.concatenate([yb[:, 0, 0] for _, yb in batches]).astype(int)
        np.testing.assert_array_equal(seen, labels)  # images keep their masks
        # each batch is a slice of the epoch's order, sorted (contiguous reads)
        order = epoch_order(n, seed, epoch)
        expected = np.concatenate([np.sort(order[i : i + batch_size]) for i in (0, 4, 8)])
        np.testing.assert_array_equal(seen, expected)
    # a run resumed at epoch 1 sees epoch 1's order first
    resumed = _epochs(training_batches(x, y, batch_size, seed, first_epoch=1), 1)[0]
    np.testing.assert_array_equal(
        np.concatenate([xb for xb, _ in resumed]), np.concatenate([xb for xb, _ in passes[1]])
    )


def _ops_in(dataset) -> set[str]:
    """The ops of a tf.data pipeline's graph, its functions' included."""
    import tensorflow as tf

    serialized = tf.raw_ops.DatasetToGraphV2(
        input_dataset=dataset._variant_tensor,
        external_state_policy=1,  # 1: ignore state
    )
    graph = tf.compat.v1.GraphDef.FromString(serialized.numpy())
    return {node.op for node in graph.node} | {
        node.op for function in graph.library.function for node in function.node_def
    }


def test_on_tensorflow_the_feed_is_tf_data_without_autotuning_nor_generator():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the tf.data pipeline is TensorFlow's")
    x, y = np.zeros((6, 2, 3, 1), np.float32), np.zeros((6, 2, 3), np.uint8)
    feed = training_batches(x, y, 4, seed=0)
    assert feed.options().autotune.enabled is False
    assert int(feed.cardinality()) == 2  # Keras knows the epoch's length before it ends
    ops = _ops_in(feed)
    assert "PyFunc" in ops  # numpy cuts the batches ...
    assert "GeneratorDataset" not in ops  # ... but not from a generator


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
