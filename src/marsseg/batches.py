"""How the arrays reach Keras: the training split as batches in a fresh order every epoch, and
predictions batch by batch.

Why not just `model.fit(x, y)` and `model.predict(x)`: on the TensorFlow backend Keras turns
its input into a tf.data pipeline with autotuning on, and each epoch (and each `predict` call)
gets a new iterator. Dropping the old one waits for tf.data's autotuning thread to wake from
its sleep, which grows with the iterator's age (up to a minute): measured on a 2-core CPU, 0 to
9 s of both cores idle after epochs of 5 s (the single UNet, quarter width, 256 images) and 1.6
to 2.7 s per 1024 images predicted in calls of 256. So on TensorFlow the training batches come
from a tf.data pipeline with autotuning off, and predictions bypass tf.data altogether.

Why not `tf.data.Dataset.from_generator` (nor a keras PyDataset, which Keras feeds through it on
TensorFlow): the first use of its GeneratorDataset op sets glibc's M_TRIM_THRESHOLD to 128 KB for
the whole process, which also pins malloc's mmap threshold at 128 KB, so every larger tensor of
every later step is mapped and zeroed afresh. Measured on a 2-core CPU (single UNet, quarter
width, passes of 8): 28 CPU seconds per epoch of 512 images against 20.5 s with glibc's
defaults, and 4.4 million page faults against 1.6 million. The batches are cut by a
`tf.numpy_function` in a `map` instead, which leaves malloc alone."""

from __future__ import annotations

import functools
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
    more at course size). On TensorFlow a tf.data pipeline with autotuning off that cuts each
    batch with numpy, without a GeneratorDataset (see above); on other backends a keras
    PyDataset."""
    import keras

    n_batches = -(-len(x) // batch_size)

    def batch(order: np.ndarray, index: int):
        chosen = np.sort(order[index * batch_size : (index + 1) * batch_size])
        return x[chosen], y[chosen]

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        epochs_started = itertools.count(first_epoch)

        def next_epoch():  # tf.data runs it once per iterator, so once per epoch
            return np.int64(next(epochs_started))

        @functools.lru_cache(maxsize=1)  # the epochs come one after the other
        def order_of(epoch: int) -> np.ndarray:
            return epoch_order(len(x), seed, epoch)

        def numpy_batch(epoch, index):
            return batch(order_of(int(epoch)), int(index))

        def tf_batch(epoch, index):
            dtypes = [tf.as_dtype(x.dtype), tf.as_dtype(y.dtype)]
            x_batch, y_batch = tf.numpy_function(numpy_batch, [epoch, index], dtypes)
            x_batch.set_shape((None, *x.shape[1:]))
            y_batch.set_shape((None, *y.shape[1:]))
            return x_batch, y_batch

        def batch_numbers(epoch):
            return tf.data.Dataset.range(n_batches).map(lambda index: (epoch, index))

        this_epoch = tf.data.Dataset.range(1).map(
            lambda _: tf.numpy_function(next_epoch, [], tf.int64, stateful=True)
        )
        options = tf.data.Options()
        options.autotune.enabled = False
        return (
            this_epoch.flat_map(batch_numbers)
            .map(tf_batch)
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
