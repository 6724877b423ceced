"""Prediction: the mean softmax of a variant's members (optionally over the 4 flips), reduced to the
two label maps post-processing needs: argmax over all classes and argmax over classes 1-4."""

from __future__ import annotations

import numpy as np

from marsseg import BIG_ROCK
from marsseg.training import images_to_input


def _flip(batch: np.ndarray, flip: int) -> np.ndarray:
    """flip 0: none, 1: left-right, 2: up-down, 3: both (an involution on (N, H, W, C))."""
    if flip & 1:
        batch = batch[:, :, ::-1]
    if flip & 2:
        batch = batch[:, ::-1]
    return batch


def mean_probabilities(models, images: np.ndarray, batch_size: int, tta: bool) -> np.ndarray:
    """Mean class probabilities (N, H, W, C) of the models, over flips too when `tta`."""
    x = images_to_input(images)
    flips = range(4) if tta else range(1)
    total = None
    for model in models:
        for flip in flips:
            p = _flip(model.predict(_flip(x, flip), batch_size=batch_size, verbose=0), flip)
            total = p if total is None else total + p
    return total / (len(models) * len(flips))


def predict_labels(
    models,
    images: np.ndarray,
    batch_size: int,
    tta: bool = False,
    big_rock_helpers=(),
    big_rock_threshold: float = 0.5,
    chunk: int = 1024,
) -> dict[str, np.ndarray]:
    """Label maps (uint8, N x 64 x 128) `labels` (argmax over 0-4) and `labels_no_background`
    (argmax over 1-4), computed chunk by chunk so memory stays flat on the 10022 test images.
    With Big Rock helpers (binary models), pixels where their mean Big Rock probability reaches
    the threshold become Big Rock in both maps."""
    labels = np.empty(images.shape, dtype=np.uint8)
    labels_no_background = np.empty(images.shape, dtype=np.uint8)
    for start in range(0, len(images), chunk):
        batch = images[start : start + chunk]
        p = mean_probabilities(models, batch, batch_size, tta)
        best = np.argmax(p, axis=-1)
        best_labelled = 1 + np.argmax(p[..., 1:], axis=-1)
        if big_rock_helpers:
            rock = mean_probabilities(big_rock_helpers, batch, batch_size, tta)[..., 1]
            confident = rock >= big_rock_threshold
            best[confident] = BIG_ROCK
            best_labelled[confident] = BIG_ROCK
        labels[start : start + chunk] = best
        labels_no_background[start : start + chunk] = best_labelled
    return {"labels": labels, "labels_no_background": labels_no_background}


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
) -> None:
    """Predict the validation and test images with a variant's members (their mean softmax)."""
    import logging

    from marsseg.io import load_arrays, save_arrays

    models = load_models(model_paths)
    helpers = load_models(big_rock_helper_paths)
    arrays = {}
    for name, path in (("val", val_npz), ("test", test_npz)):
        images = load_arrays(path)["images"]
        predicted = predict_labels(models, images, batch_size, tta, helpers, big_rock_threshold)
        arrays.update({f"{name}_{key}": value for key, value in predicted.items()})
        logging.getLogger(__name__).info("predicted %d %s images", len(predicted["labels"]), name)
    save_arrays(out_npz, **arrays)
