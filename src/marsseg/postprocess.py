"""Post-processing of predicted label maps; each method is a value of the `{method}` wildcard.

- `none`: the argmax over all five classes.
- `no_background`: the argmax over classes 1-4 (background is never scored, so never predict it).
- `nearest_label`: seed 000's trick: a pixel predicted 0 takes the label of the nearest pixel not
  predicted 0 (Euclidean distance); a mask predicted all 0 becomes `all_background_label`
  (seed 000 used 4, Big Rock), or stays 0 when that is None.
"""

from __future__ import annotations

import numba
import numpy as np


def nearest_label(labels: np.ndarray, all_background_label: int | None = 4) -> np.ndarray:
    """Fill predicted-0 pixels of each (H, W) mask in a (N, H, W) stack with the nearest label.

    The result is that of `scipy.ndimage.distance_transform_edt(mask == 0, return_indices=True)`
    on each mask, ties included (of the labelled pixels at the smallest distance: the leftmost
    column, then the upper row), but about 4 times faster: 10022 course-size masks in about a
    second on one core, where scipy, one mask at a time, needs 3-5 s.
    """
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    out = labels.copy()
    _fill_with_nearest_label(labels, out)
    if all_background_label is not None:
        out[labels.max(axis=(1, 2), initial=0) == 0] = all_background_label
    return out


@numba.njit(cache=True, nogil=True)
def _fill_with_nearest_label(masks, out):
    """The exact Euclidean nearest labelled pixel, in two passes per mask: down each column the
    nearest labelled row, then along each row a search of the columns outwards from the pixel's
    own, which stops once a column's horizontal distance alone exceeds the best distance found.
    Masks with no label stay as they are."""
    n, height, width = masks.shape
    nearest_row = np.empty((height, width), dtype=np.int64)
    for i in range(n):
        mask = masks[i]
        for c in range(width):  # pass 1: the nearest labelled row in the column (upper on a tie)
            above = -1
            for r in range(height):
                if mask[r, c] != 0:
                    above = r
                nearest_row[r, c] = above
            below = -1
            for r in range(height - 1, -1, -1):
                if mask[r, c] != 0:
                    below = r
                above = nearest_row[r, c]
                if below >= 0 and (above < 0 or below - r < r - above):
                    nearest_row[r, c] = below
        for r in range(height):  # pass 2: the nearest over columns (the left one on a tie)
            for c in range(width):
                if mask[r, c] != 0:
                    continue
                best, best_row, best_column = height * height + width * width, -1, -1
                k = 0
                while k < width and k * k <= best:
                    for column in (c - k, c + k):
                        if column < 0 or column >= width or nearest_row[r, column] < 0:
                            continue
                        row = nearest_row[r, column]
                        distance = (r - row) * (r - row) + k * k
                        if distance < best or (distance == best and column < best_column):
                            best, best_row, best_column = distance, row, column
                    k += 1
                if best_row >= 0:
                    out[i, r, c] = mask[best_row, best_column]


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
