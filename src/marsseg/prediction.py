"""Prediction: the mean softmax of a variant's members (and, with test-time augmentation, also its
mean over the 4 flips), reduced to the two label maps post-processing needs: argmax over all
classes and argmax over classes 1-4. A soft-vote ensemble averages its variants' probabilities,
each variant's being the mean of its members' (see `soft_vote_weights`)."""

from __future__ import annotations

import numpy as np

from marsseg import BIG_ROCK
from marsseg.batches import predict_in_batches
from marsseg.training import images_to_input

# Test images per chunk of predict_labels: the multipath UNet's TTA prediction at course size on
# a CPU peaks at 2.8 GB with 128, 3.0 GB with 256, as fast.
CHUNK_IMAGES = 128


def chunk_size(batch_size: int, chunk: int = CHUNK_IMAGES) -> int:
    """The images predict_labels takes at a time: `chunk`, but never less than one whole pass."""
    return max(chunk, batch_size)


def _flip(batch: np.ndarray, flip: int) -> np.ndarray:
    """flip 0: none, 1: left-right, 2: up-down, 3: both (an involution on (N, H, W, C))."""
    if flip & 1:
        batch = batch[:, :, ::-1]
    if flip & 2:
        batch = batch[:, ::-1]
    return batch


def soft_vote_weights(part_sizes: list[int]) -> list[float]:
    """The weight of each model in the soft vote of variants that have `part_sizes` members
    each (models listed variant by variant): every variant counts equally and its members share
    its weight, so that an ensemble of a 2-member variant and a 1-member one gives each variant
    1/2, not its members 1/3 each."""
    if not part_sizes or min(part_sizes) < 1:
        raise ValueError(f"every part of a soft vote needs at least one model, got {part_sizes}")
    return [1 / (len(part_sizes) * size) for size in part_sizes for _ in range(size)]


def _mean_probabilities_plain_and_flipped(
    models, images, batch_size: int, tta: bool, weights=None
) -> list:
    """The models' mean class probabilities (N, H, W, C), weighted by `weights` (None: equal
    weights), without flips and, when `tta`, also their mean over the 4 flips (flip 0
    included): one prediction pass gives both."""
    if weights is None:
        weights = [1 / len(models)] * len(models)
    x = images_to_input(images)
    plain = flipped = 0.0
    for model, weight in zip(models, weights, strict=True):
        p = predict_in_batches(model, x, batch_size)
        plain = plain + float(weight) * p
        if tta:
            for flip in range(1, 4):
                p = p + _flip(predict_in_batches(model, _flip(x, flip), batch_size), flip)
            flipped = flipped + float(weight) * p
    means = [plain]
    if tta:
        means.append(flipped / 4)
    return means


def mean_probabilities(
    models, images: np.ndarray, batch_size: int, tta: bool, weights=None
) -> np.ndarray:
    """Mean class probabilities (N, H, W, C) of the models (weighted by `weights`, if given),
    over flips too when `tta`."""
    return _mean_probabilities_plain_and_flipped(models, images, batch_size, tta, weights)[-1]


def predict_labels(
    models,
    images: np.ndarray,
    batch_size: int,
    tta: bool = False,
    big_rock_helpers=(),
    big_rock_threshold: float = 0.5,
    chunk: int = CHUNK_IMAGES,
    weights=None,
) -> dict[str, np.ndarray]:
    """Label maps (uint8, N x 64 x 128) `labels` (argmax over 0-4) and `labels_no_background`
    (argmax over 1-4) of the models' mean probabilities, and with `tta` also `tta_labels` and
    `tta_labels_no_background` from the mean over the 4 flips (one pass gives both). Computed
    chunk by chunk so memory stays flat on the 10022 test images. With Big Rock helpers
    (binary models), pixels where their mean Big Rock probability reaches the threshold become
    Big Rock in every map. `weights`: the models' weights in the mean (None: equal)."""
    chunk = chunk_size(batch_size, chunk)
    prefixes = ["", "tta_"] if tta else [""]
    maps = {
        f"{prefix}{key}": np.empty(images.shape, dtype=np.uint8)
        for prefix in prefixes
        for key in ("labels", "labels_no_background")
    }
    for start in range(0, len(images), chunk):
        batch = images[start : start + chunk]
        means = _mean_probabilities_plain_and_flipped(models, batch, batch_size, tta, weights)
        rocks = [None] * len(means)
        if big_rock_helpers:
            helper_means = _mean_probabilities_plain_and_flipped(
                big_rock_helpers, batch, batch_size, tta
            )
            rocks = [p[..., 1] for p in helper_means]
        for prefix, p, rock in zip(prefixes, means, rocks, strict=True):
            best = np.argmax(p, axis=-1)
            best_labelled = 1 + np.argmax(p[..., 1:], axis=-1)
            if rock is not None:
                confident = rock >= big_rock_threshold
                best[confident] = BIG_ROCK
                best_labelled[confident] = BIG_ROCK
            maps[f"{prefix}labels"][start : start + chunk] = best
            maps[f"{prefix}labels_no_background"][start : start + chunk] = best_labelled
    return maps


def load_models(paths: list[str]):
    import keras

    return [keras.models.load_model(path, compile=False) for path in paths]


def predict_files(
    model_paths: list[str],
    big_rock_helper_paths: list[str],
    val_npz: str,
    test_npz: str,
    out_npz: str,
    batch_size: int,
    tta: bool,
    big_rock_threshold: float = 0.5,
    part_sizes: list[int] | None = None,
) -> None:
    """Predict the validation and test images with a variant's members (their mean softmax), or
    with an ensemble's variants: `part_sizes` gives the number of models of each variant, in the
    order of `model_paths`, and each variant counts equally (None: one variant)."""
    import logging

    from marsseg.io import load_arrays, save_arrays

    weights = soft_vote_weights(part_sizes or [len(model_paths)])
    if len(weights) != len(model_paths):
        raise ValueError(f"part sizes {part_sizes} do not add up to {len(model_paths)} models")
    models = load_models(model_paths)
    helpers = load_models(big_rock_helper_paths)
    arrays = {}
    for name, path in (("val", val_npz), ("test", test_npz)):
        images = load_arrays(path)["images"]
        predicted = predict_labels(
            models, images, batch_size, tta, helpers, big_rock_threshold, weights=weights
        )
        arrays.update({f"{name}_{key}": value for key, value in predicted.items()})
        logging.getLogger(__name__).info("predicted %d %s images", len(predicted["labels"]), name)
    save_arrays(out_npz, compressed=True, **arrays)
