"""The seeded train/validation split, stratified on Big Rock presence."""

from __future__ import annotations

import numpy as np

from marsseg import BIG_ROCK
from marsseg.errors import InputError


def split_indices(
    masks: np.ndarray, val_fraction: float, seed: int, stratify_on_big_rock: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (train, val) index arrays.

    With stratification, images with and without Big Rock pixels are split separately, so both
    sides get their share of the rare class (at least one Big Rock image each when there are two).
    """
    n = len(masks)
    if not 0 < val_fraction < 1:
        raise InputError(
            f"split.val_fraction is {val_fraction}; it must lie strictly between 0 and 1."
        )
    if n < 2:
        raise InputError(
            f"only {n} image(s) left to split into training and validation. "
            "Fix: give more labelled images or loosen the outlier filter."
        )
    rng = np.random.default_rng(seed)
    if stratify_on_big_rock:
        has_big_rock = (masks == BIG_ROCK).reshape(n, -1).any(axis=1)
        strata = [np.flatnonzero(has_big_rock), np.flatnonzero(~has_big_rock)]
    else:
        strata = [np.arange(n)]
    val_parts = []
    for stratum in strata:
        if len(stratum) == 0:
            continue
        n_val = int(round(val_fraction * len(stratum)))
        if len(stratum) >= 2:
            n_val = min(max(n_val, 1), len(stratum) - 1)
        val_parts.append(rng.permutation(stratum)[:n_val])
    val = np.sort(np.concatenate(val_parts))
    train = np.setdiff1d(np.arange(n), val)
    if len(val) == 0 or len(train) == 0:
        raise InputError(
            f"split.val_fraction {val_fraction} leaves an empty side with {n} images"
            f"{' split apart by Big Rock presence' if stratify_on_big_rock else ''}. "
            "Fix: pick a fraction that puts at least one image on each side"
            f"{' or set split.stratify_on_big_rock to false' if stratify_on_big_rock else ''}."
        )
    return train, val
