"""Post-processing of predicted label maps; each method is a value of the `{method}` wildcard.

- `none`: the argmax over all five classes.
- `no_background`: the argmax over classes 1-4 (background is never scored, so never predict it).
- `nearest_label`: seed 000's trick: a pixel predicted 0 takes the label of the nearest pixel not
  predicted 0 (Euclidean distance); a mask predicted all 0 becomes `all_background_label`
  (seed 000 used 4, Big Rock), or stays 0 when that is None.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def nearest_label(labels: np.ndarray, all_background_label: int | None = 4) -> np.ndarray:
    """Fill predicted-0 pixels of each (H, W) mask in a (N, H, W) stack with the nearest label."""
    labels = np.asarray(labels, dtype=np.uint8)
    out = labels.copy()
    for i, mask in enumerate(labels):
        zero = mask == 0
        if not zero.any():
            continue
        if zero.all():
            if all_background_label is not None:
                out[i] = all_background_label
            continue
        # For every pixel, the indices of the nearest non-zero pixel.
        _, (rows, cols) = ndimage.distance_transform_edt(zero, return_indices=True)
        out[i] = mask[rows, cols]
    return out


def apply_method(
    method: str, labels: np.ndarray, labels_no_background: np.ndarray, all_background_label=4
) -> np.ndarray:
    """Return the post-processed label maps for one method."""
    if method == "none":
        return labels
    if method == "no_background":
        return labels_no_background
    if method == "nearest_label":
        return nearest_label(labels, all_background_label)
    raise ValueError(f"unknown post-processing method '{method}'; use {METHODS}")


METHODS = ("none", "no_background", "nearest_label")
