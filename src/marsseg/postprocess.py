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

# The 8 pixels within distance sqrt(2), as (row, column) offsets, in the order in which
# scipy.ndimage.distance_transform_edt breaks ties: nearer first, then left column, then upper row.
NEIGHBOURS = ((0, -1), (-1, 0), (1, 0), (0, 1), (-1, -1), (1, -1), (-1, 1), (1, 1))


def nearest_label(
    labels: np.ndarray, all_background_label: int | None = 4, chunk: int = 64
) -> np.ndarray:
    """Fill predicted-0 pixels of each (H, W) mask in a (N, H, W) stack with the nearest label.

    The result is that of `scipy.ndimage.distance_transform_edt(mask == 0, return_indices=True)`
    on each mask, ties included (of the labelled pixels at the smallest distance: the leftmost
    column, then the upper row). Vectorised over `chunk` masks at a time, first from the 8
    neighbours; only the masks with a 0 pixel farther than sqrt(2) from every label need the
    distance transform, on the box around their 0 pixels.
    """
    labels = np.asarray(labels, dtype=np.uint8)
    out = labels.copy()
    has_zero = labels.min(axis=(1, 2)) == 0
    all_zero = labels.max(axis=(1, 2)) == 0
    if all_background_label is not None:
        out[all_zero] = all_background_label
    some_zero = np.flatnonzero(has_zero & ~all_zero)
    for start in range(0, len(some_zero), chunk):
        index = some_zero[start : start + chunk]
        out[index], unresolved = _fill_from_neighbours(labels[index])
        for i in index[unresolved]:
            out[i] = _fill_by_distance_transform(labels[i])
    return out


def _fill_from_neighbours(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill the 0 pixels that have a labelled neighbour within sqrt(2) (exactly as the distance
    transform would); also return which masks still hold a 0 pixel."""
    n, height, width = masks.shape
    padded = np.zeros((n, height + 2, width + 2), dtype=np.uint8)  # 0 outside: never a label
    padded[:, 1:-1, 1:-1] = masks
    filled = masks.copy()
    todo = masks == 0
    for row, column in NEIGHBOURS:
        neighbour = padded[:, 1 + row : 1 + row + height, 1 + column : 1 + column + width]
        take = todo & (neighbour != 0)
        np.copyto(filled, neighbour, where=take)
        todo &= ~take
    return filled, todo.reshape(n, -1).any(axis=1)


def _fill_by_distance_transform(mask: np.ndarray) -> np.ndarray:
    """Fill the 0 pixels of one (H, W) mask holding both 0 and labelled pixels with the label of
    the nearest labelled pixel, via the exact Euclidean distance transform.

    Only the box around the 0 pixels, one pixel wider on each side, is transformed: every pixel
    outside the box is labelled, so for any labelled pixel outside it the box's edge holds a
    strictly nearer one, and every nearest pixel (ties included) lies in the box.
    """
    zero = mask == 0
    rows = np.flatnonzero(zero.any(axis=1))
    columns = np.flatnonzero(zero.any(axis=0))
    box = (
        slice(max(rows[0] - 1, 0), rows[-1] + 2),
        slice(max(columns[0] - 1, 0), columns[-1] + 2),
    )
    nearest = ndimage.distance_transform_edt(zero[box], return_distances=False, return_indices=True)
    filled = mask.copy()
    filled[box] = mask[box][tuple(nearest)]
    return filled


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
