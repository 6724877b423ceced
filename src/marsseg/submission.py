"""The course's submission CSV (helper `y_to_df`): header `id,0,...,8191`, one row per test image
in order, the 64x128 mask flattened row-major, integer labels 0-4."""

from __future__ import annotations

import os

import numpy as np

from marsseg import IMAGE_HEIGHT, IMAGE_WIDTH
from marsseg.io import atomic_path
from marsseg.metrics import as_labels


def write_submission(path: str | os.PathLike, masks: np.ndarray) -> None:
    """Write predicted masks (N, 64, 128) with labels 0-4 as the course's CSV, atomically."""
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[1:] != (IMAGE_HEIGHT, IMAGE_WIDTH):
        raise ValueError(
            f"submission masks must be (N, {IMAGE_HEIGHT}, {IMAGE_WIDTH}), not {masks.shape}"
        )
    n = len(masks)
    flat = as_labels(masks, "submission labels").reshape(n, -1)
    width = flat.shape[1]
    # Every label is one digit, so a row is "d,d,...,d": build all rows as one byte array.
    body = np.full((n, 2 * width), ord(","), dtype=np.uint8)
    body[:, 0::2] = flat + ord("0")
    body[:, -1] = ord("\n")
    header = "id," + ",".join(str(i) for i in range(width)) + "\n"
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(header.encode())
        for start in range(0, n, 1024):
            chunk = body[start : start + 1024]
            ids = [f"{i}," for i in range(start, start + len(chunk))]
            lines = [i.encode() + row.tobytes() for i, row in zip(ids, chunk, strict=True)]
            handle.write(b"".join(lines))


def read_submission(path: str | os.PathLike, height: int = 64, width: int = 128) -> np.ndarray:
    """Read a submission CSV back into (N, height, width) uint8 masks, checking its format."""
    with open(path, "rb") as handle:
        header = handle.readline().decode().strip()
        if header != "id," + ",".join(str(i) for i in range(height * width)):
            raise ValueError(f"{path}: the header is not id,0,...,{height * width - 1}")
        masks = []
        for expected_id, line in enumerate(handle):
            row_id, _, values = line.rstrip(b"\n").partition(b",")
            digits = np.frombuffer(values, dtype=np.uint8)[0::2] - ord("0")
            if int(row_id) != expected_id or digits.size != height * width or digits.max() > 4:
                raise ValueError(f"{path}: row {expected_id} is not a valid submission row")
            masks.append(digits.reshape(height, width))
    return np.stack(masks) if masks else np.zeros((0, height, width), np.uint8)
