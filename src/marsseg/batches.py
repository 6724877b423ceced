"""How the arrays reach Keras: the training split as batches in a fresh order every epoch, and
predictions batch by batch.

Why not just `model.fit(x, y)` and `model.predict(x)`: on the TensorFlow backend Keras turns
its input into a tf.data pipeline with autotuning on, and each epoch (and each `predict` call)
gets a new iterator. Dropping the old one waits for tf.data's autotuning thread to wake from
its sleep, which grows with the iterator's age (up to a minute): measured on a 2-core CPU, 0 to
9 s of both cores idle after epochs of 5 s (the single UNet, quarter width, 256 images) and 1.6
to 2.7 s per 1024 images predicted in calls of 256. So on TensorFlow the training batches come
from a tf.data pipeline with autotuning off, and predictions bypass tf.data altogether.
"""

from __future__ import annotations

import itertools

import numpy as np


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the `n` training images in `epoch` (0-based): a function of the seed and the
    epoch alone, so a run resumed at epoch k sees the orders an uninterrupted run would."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def training_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, first_epoch=0):
    """The training split as batches of `batch_size` for `model.fit`, in the order
    epoch_order gives each epoch (from `first_epoch` on, for a resumed run), one batch at a
    time: Keras copies in-memory arrays whole into the backend before the first step (0.5 GB
    more at course size). On TensorFlow a tf.data pipeline with autotuning off (see above);
    on other backends a keras PyDataset."""
    import keras

    n_batches = -(-len(x) // batch_size)

    def batch(order: np.ndarray, index: int):
        chosen = np.sort(order[index * batch_size : (index + 1) * batch_size])
        return x[chosen], y[chosen]

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        epochs_started = itertools.count(first_epoch)

        def one_epoch():  # tf.data calls it once per iterator, so once per epoch
            order = epoch_order(len(x), seed, next(epochs_started))
            for index in range(n_batches):
                yield batch(order, index)

        signature = tuple(
            tf.TensorSpec((None, *array.shape[1:]), tf.as_dtype(array.dtype)) for array in (x, y)
        )
        options = tf.data.Options()
        options.autotune.enabled = False
        return (
            tf.data.Dataset.from_generator(one_epoch, output_signature=signature)
            .apply(tf.data.experimental.assert_cardinality(n_batches))
            .prefetch(1)
            .with_options(options)
        )

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = first_epoch
            self.order = epoch_order(len(x), seed, self.epoch)

        def __len__(self):
            return n_batches

        def __getitem__(self, index):
            return batch(self.order, index)

        def on_epoch_end(self):
            self.epoch += 1
            self.order = epoch_order(len(x), seed, self.epoch)

    return Batches()


def predict_in_batches(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """`model.predict(x, batch_size)` without tf.data (see above): one `predict_on_batch` per
    batch, the same compiled function and the same numbers."""
    out = None
    for start in range(0, len(x), batch_size):
        predicted = np.asarray(model.predict_on_batch(x[start : start + batch_size]))
        if out is None:
            out = np.empty((len(x), *predicted.shape[1:]), dtype=predicted.dtype)
        out[start : start + len(predicted)] = predicted
    return out
