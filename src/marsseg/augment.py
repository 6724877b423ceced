"""Offline augmentation of the training split. Masks move with images; intensity changes never
touch masks. Each augmentation is a function (images, masks, rng, **params) -> (images, masks)
on uint8 arrays of shape (N, 64, 128); the config lists them by name, applied in order."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from marsseg import BIG_ROCK
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


CHUNK_IMAGES = 1024  # images an intensity step changes at a time (64 MiB of float64)


def _per_chunk(images: np.ndarray, change: Callable[[np.ndarray, slice], np.ndarray]) -> np.ndarray:
    """`_to_uint8(change(images[part], part))` over chunks of images: the float copies of a
    chunk only, not of the whole stack (8016 flipped course images: 525 MB each)."""
    out = np.empty_like(images)
    for start in range(0, len(images), CHUNK_IMAGES):
        part = slice(start, start + CHUNK_IMAGES)
        out[part] = _to_uint8(change(images[part], part))
    return out


def brightness(
    images: np.ndarray,
    masks: np.ndarray,
    rng: np.random.Generator,
    max_delta: float = 20.0,
    probability: float = 1.0,
) -> Arrays:
    """Add a random grey-level offset in [-max_delta, max_delta] per image."""
    delta = rng.uniform(-max_delta, max_delta, len(images)) * _chosen(len(images), probability, rng)
    return _per_chunk(images, lambda chunk, part: chunk + delta[part, None, None]), masks


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

    def change(chunk, part):
        mean = chunk.mean(axis=(1, 2), keepdims=True)
        return mean + (chunk - mean) * factor[part, None, None]

    return _per_chunk(images, change), masks


def gaussian_noise(
    images: np.ndarray,
    masks: np.ndarray,
    rng: np.random.Generator,
    std: float = 5.0,
    probability: float = 1.0,
) -> Arrays:
    """Add zero-mean Gaussian noise of the given standard deviation (grey levels)."""
    chosen = _chosen(len(images), probability, rng)

    def change(chunk, part):  # the chunks draw the noise in order: the draws of the whole stack
        noise = rng.normal(0.0, std, chunk.shape).astype(np.float32)
        return chunk + noise * chosen[part, None, None]

    return _per_chunk(images, change), masks


def _big_rock_bank(images: np.ndarray, masks: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every connected Big Rock region as (grey patch, boolean shape) cut to its bounding box."""
    from scipy import ndimage

    bank = []
    for image, mask in zip(images, masks, strict=True):
        regions, _ = ndimage.label(mask == BIG_ROCK)
        for region, box in enumerate(ndimage.find_objects(regions), start=1):
            shape = regions[box] == region
            if shape.sum() >= 4:
                bank.append((image[box], shape))
    return bank


def big_rock_copy_paste(
    images: np.ndarray,
    masks: np.ndarray,
    rng: np.random.Generator,
    probability: float = 0.3,
    max_rocks: int = 2,
) -> Arrays:
    """Paste 1..max_rocks Big Rock regions, cut from the training images, into a random share of
    the images at random places (the top peers' lever for the rare class)."""
    bank = _big_rock_bank(images, masks)
    images, masks = images.copy(), masks.copy()
    if not bank:
        return images, masks
    height, width = images.shape[1:]
    for i in np.flatnonzero(_chosen(len(images), probability, rng)):
        for _ in range(rng.integers(1, max_rocks + 1)):
            patch, shape = bank[rng.integers(len(bank))]
            top = rng.integers(0, height - shape.shape[0] + 1)
            left = rng.integers(0, width - shape.shape[1] + 1)
            window = (slice(top, top + shape.shape[0]), slice(left, left + shape.shape[1]))
            images[i][window][shape] = patch[shape]
            masks[i][window][shape] = BIG_ROCK
    return images, masks


def cutmix(
    images: np.ndarray,
    masks: np.ndarray,
    rng: np.random.Generator,
    probability: float = 0.5,
    max_fraction: float = 0.5,
    big_rock_partners: bool = False,
) -> Arrays:
    """Replace a random rectangle (up to max_fraction of each side) of a random share of the
    images, and of their masks, by the same rectangle of another image. With
    `big_rock_partners`, the partner is an image with Big Rock (class-targeted CutMix)."""
    n, height, width = images.shape
    partners_pool = np.arange(n)
    if big_rock_partners:
        with_rock = np.flatnonzero((masks == BIG_ROCK).reshape(n, -1).any(axis=1))
        partners_pool = with_rock if len(with_rock) else partners_pool
    out_images, out_masks = images.copy(), masks.copy()
    for i in np.flatnonzero(_chosen(n, probability, rng)):
        partner = partners_pool[rng.integers(len(partners_pool))]
        h = int(rng.integers(1, max(2, int(height * max_fraction)) + 1))
        w = int(rng.integers(1, max(2, int(width * max_fraction)) + 1))
        top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        box = (slice(top, top + h), slice(left, left + w))
        out_images[i][box] = images[partner][box]
        out_masks[i][box] = masks[partner][box]
    return out_images, out_masks


AUGMENTATIONS: dict[str, Callable[..., Arrays]] = {
    "flips": flips,
    "rotate180": rotate180,
    "brightness": brightness,
    "contrast": contrast,
    "gaussian_noise": gaussian_noise,
    "big_rock_copy_paste": big_rock_copy_paste,
    "cutmix": cutmix,
}


def step_parameters(name: str) -> dict:
    """The parameters an augmentation step takes, with their defaults."""
    signature = inspect.signature(AUGMENTATIONS[name])
    return {key: value.default for key, value in list(signature.parameters.items())[3:]}


def check_steps(steps: list[dict]) -> None:
    """Refuse an unknown step or parameter (InputError naming it and the fix), so that the
    workflow can check its config before any job runs."""
    for step in steps:
        params = dict(step)
        name = params.pop("name", None)
        if name not in AUGMENTATIONS:
            raise InputError(
                f"unknown augmentation '{name}'. Fix: use one of {sorted(AUGMENTATIONS)}."
            )
        known = step_parameters(name)
        unknown = sorted(set(params) - set(known))
        if unknown:
            valid = ", ".join(f"{key} (default {value})" for key, value in known.items())
            raise InputError(
                f"augmentation '{name}' has no parameter(s) {unknown}. "
                f"Fix: use {valid or 'no parameters'}."
            )
        for key, value in params.items():
            _check_step_value(name, key, value, known[key])


# The steps that add copies of each image (the others change images in place).
COPYING_STEPS = ("flips",)


def check_leaky_split(leaky: bool, steps: list[dict]) -> None:
    """The leaky ablation splits after augmentation so that copies of one image land on both
    sides: refused when no step makes copies, as it would then measure nothing."""
    names = [step.get("name") for step in steps]
    if leaky and not any(name in COPYING_STEPS for name in names):
        raise InputError(
            f"config: split.leaky is true, but augmentation.steps {names} make no copies of an "
            "image (only flips does), so nothing leaks across the split and the ablation "
            "measures nothing. Fix: add `- name: flips` to augmentation.steps, or set "
            "split.leaky: false."
        )


# Highest values: a probability or a fraction of a side is at most 1; a contrast factor below 0
# (max_factor over 1) would invert the grey levels; an offset over 255 turns every image white
# or black. max_rocks is a whole count of at least 1; cutmix's box is at least a pixel a side, so
# its max_fraction is above 0 (no cutmix: leave the step out).
_HIGHEST = {"probability": 1, "max_fraction": 1, "max_factor": 1, "max_delta": 255}
_COUNTS = ("max_rocks",)
_ABOVE_ZERO = ("max_fraction",)


def _check_step_value(name: str, key: str, value, default) -> None:
    """A flag must be true or false; a count a whole number >= 1; any other number a number >= 0
    (above 0 for _ABOVE_ZERO), at most _HIGHEST[key] where that is set."""
    number = not isinstance(value, bool) and isinstance(value, int | float)
    if isinstance(default, bool):
        wrong = not isinstance(value, bool)
        wanted = "true or false"
    elif key in _COUNTS:
        wrong = not (number and isinstance(value, int) and value >= 1)
        wanted = "a whole number >= 1"
    elif key in _ABOVE_ZERO:
        wrong = not (number and 0 < value <= _HIGHEST[key])
        wanted = f"a number above 0, at most {_HIGHEST[key]}"
    elif key in _HIGHEST:
        wrong = not (number and 0 <= value <= _HIGHEST[key])
        wanted = f"a number from 0 to {_HIGHEST[key]}"
    else:
        wrong = not (number and value >= 0)
        wanted = "a number >= 0"
    if wrong:
        raise InputError(f"augmentation '{name}' has {key}: {value!r}. Fix: set {key} to {wanted}.")


def augment(images: np.ndarray, masks: np.ndarray, steps: list[dict], seed: int) -> Arrays:
    """Apply the configured augmentation steps in order: [{"name": ..., **params}, ...]."""
    check_steps(steps)
    rng = np.random.default_rng(seed)
    for step in steps:
        params = dict(step)
        images, masks = AUGMENTATIONS[params.pop("name")](images, masks, rng, **params)
    return images, masks
