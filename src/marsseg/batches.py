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
defaults, and 4.4 million page faults against 1.6 million. Nor a `tf.numpy_function` that cuts
each batch (the feed before this one): alternating one-epoch fits of one model on the same 2-core
CPU (single UNet, quarter width, 1024 images in passes of 8), epochs fed that way took 0.5 to
1.2 s longer than Keras' own feed from arrays, 6 % (medians of 4-5 epochs, 5 runs). Here Python
draws each epoch's order only, and the graph cuts and scales the batches, of a static size
where the split allows (as Keras' own feed does): 3.28 s per epoch of 256 images against 3.23 s
from arrays, medians of 12 alternating epochs, and 3.36 s with a batch size of None."""

from __future__ import annotations

import itertools

import numpy as np


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the `n` training images in `epoch` (0-based): a function of the seed and the
    epoch alone, so a run resumed at epoch k sees the orders an uninterrupted run would."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def images_to_input(images: np.ndarray) -> np.ndarray:
    """uint8 grey images (N, 64, 128) -> float32 model input (N, 64, 128, 1) in [0, 1], with
    one float32 copy only (in place: the course-size training split is 263 MB of it)."""
    x = images.astype(np.float32)
    x /= np.float32(255.0)
    return x[..., None]


def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """The indices of the `n` training images in the order `epoch` feeds them: epoch_order cut
    into batches of `batch_size`, each batch sorted (contiguous reads)."""
    order = epoch_order(n, seed, epoch)
    return np.concatenate([np.sort(order[i : i + batch_size]) for i in range(0, n, batch_size)])


def training_batches(
    images: np.ndarray, targets: np.ndarray, batch_size: int, seed: int, first_epoch=0
):
    """The training split (uint8 images and their targets) for `model.fit`: batches of
    `batch_size` model inputs (images_to_input) and targets, in the order batch_order gives
    each epoch, from `first_epoch` on (a resumed run). On TensorFlow a tf.data pipeline with
    autotuning off (see above) that holds the uint8 arrays (two copies of 66 MB at course size,
    instead of Keras' float32 copy of the inputs) and cuts and scales each batch in the graph:
    Python only draws each epoch's order. On other backends a keras PyDataset."""
    import keras

    n_batches = -(-len(images) // batch_size)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        epochs_started = itertools.count(first_epoch)

        def next_epoch_order():  # tf.data runs it once per iterator, so once per epoch
            return batch_order(len(images), batch_size, seed, next(epochs_started))

        def epoch_batches(order):
            order.set_shape((len(images),))
            # Batches of one known size when they all are (8016 images in passes of 8): the
            # steps then run on static shapes, 2-3 % faster here than on a batch size of None.
            whole = len(images) % batch_size == 0
            return tf.data.Dataset.from_tensor_slices(order).batch(batch_size, whole)

        all_images, all_targets = tf.constant(images), tf.constant(targets)

        def cut(indices):
            batch_images = tf.cast(tf.gather(all_images, indices), tf.float32) / 255.0
            return batch_images[..., None], tf.gather(all_targets, indices)

        options = tf.data.Options()
        options.autotune.enabled = False
        return (
            tf.data.Dataset.range(1)
            .map(lambda _: tf.numpy_function(next_epoch_order, [], tf.int64, stateful=True))
            .flat_map(epoch_batches)
            .map(cut)
            .apply(tf.data.experimental.assert_cardinality(n_batches))
            .prefetch(1)
            .with_options(options)
        )

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = first_epoch
            self.order = batch_order(len(images), batch_size, seed, self.epoch)

        def __len__(self):
            return n_batches

        def __getitem__(self, index):
            chosen = self.order[index * batch_size : (index + 1) * batch_size]
            return images_to_input(images[chosen]), targets[chosen]

        def on_epoch_end(self):
            self.epoch += 1
            self.order = batch_order(len(images), batch_size, seed, self.epoch)

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
