"""Offline augmentation of the training split. Masks move with images; intensity changes never
touch masks. Each augmentation is a function (images, masks, rng, **params) -> (images, masks)
on uint8 arrays of shape (N, 64, 128); the config lists them by name, applied in order."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from marsseg.errors import InputError

Arrays = tuple[np.ndarray, np.ndarray]


def flips(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator) -> Arrays:
    """Seed 001's pipeline: each image four times (as is, left-right, up-down, both)."""
    del rng

    def four(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a, a[:, :, ::-1], a[:, ::-1, :], a[:, ::-1, ::-1]])

    return four(images), four(masks)


def _chosen(n: int, probability: float, rng: np.random.Generator) -> np.ndarray:
    return rng.random(n) < probability


def rotate180(
    images: np.ndarray, masks: np.ndarray, rng: np.random.Generator, probability: float = 0.5
) -> Arrays:
    """Rotate a random share of the images (and their masks) by 180 degrees."""
    chosen = _chosen(len(images), probability, rng)
    images, masks = images.copy(), masks.copy()
    images[chosen] = images[chosen][:, ::-1, ::-1]
    masks[chosen] = masks[chosen][:, ::-1, ::-1]
    return images, masks


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def brightness(
    images: np.ndarray,
    masks: np.ndarray,
    rng: np.random.Generator,
    max_delta: float = 20.0,
    probability: float = 1.0,
) -> Arrays:
    """Add a random grey-level offset in [-max_delta, max_delta] per image."""
    delta = rng.uniform(-max_delta, max_delta, len(images)) * _chosen(len(images), probability, rng)
    return _to_uint8(images + delta[:, None, None]), masks


def contrast(
    images: np.ndarray,
    masks: np.ndarray,
    rng: np.random.Generator,
    max_factor: float = 0.2,
    probability: float = 1.0,
) -> Arrays:
    """Scale each image's deviation from its mean by a factor in [1 - max_factor, 1 + max_factor]."""
    chosen = _chosen(len(images), probability, rng)
    factor = np.where(chosen, rng.uniform(1 - max_factor, 1 + max_factor, len(images)), 1.0)
    mean = images.mean(axis=(1, 2), keepdims=True)
    return _to_uint8(mean + (images - mean) * factor[:, None, None]), masks


def gaussian_noise(
    images: np.ndarray,
    masks: np.ndarray,
    rng: np.random.Generator,
    std: float = 5.0,
    probability: float = 1.0,
) -> Arrays:
    """Add zero-mean Gaussian noise of the given standard deviation (grey levels)."""
    chosen = _chosen(len(images), probability, rng)
    noise = rng.normal(0.0, std, images.shape).astype(np.float32) * chosen[:, None, None]
    return _to_uint8(images + noise), masks


AUGMENTATIONS: dict[str, Callable[..., Arrays]] = {
    "flips": flips,
    "rotate180": rotate180,
    "brightness": brightness,
    "contrast": contrast,
    "gaussian_noise": gaussian_noise,
}


def augment(images: np.ndarray, masks: np.ndarray, steps: list[dict], seed: int) -> Arrays:
    """Apply the configured augmentation steps in order: [{"name": ..., **params}, ...]."""
    rng = np.random.default_rng(seed)
    for step in steps:
        params = dict(step)
        name = params.pop("name", None)
        if name not in AUGMENTATIONS:
            raise InputError(
                f"unknown augmentation '{name}'. Fix: use one of {sorted(AUGMENTATIONS)}."
            )
        try:
            images, masks = AUGMENTATIONS[name](images, masks, rng, **params)
        except TypeError as error:
            raise InputError(
                f"augmentation '{name}' got bad parameters {params} ({error}). "
                "Fix: see the augmentation list in config.yaml for its parameters."
            ) from error
    return images, masks
