"""Reading the course-format npz with validation, and writing outputs atomically."""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from marsseg import IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES
from marsseg.errors import InputError

COURSE_KEYS = ("training_set", "test_set")
CHUNK_IMAGES = 1024  # images validated at a time (64 MiB of float64)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A failure leaves neither a half-written file nor the temporary one behind.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=target.suffix or ".tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from the group
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_arrays(path: str | os.PathLike, *, compressed: bool = False, **arrays: np.ndarray) -> None:
    """Save arrays to an npz, atomically and byte-identically for identical input. `compressed`
    deflates them, for label maps: the 10522 maps of a briefly trained unet went from 86 to 2 MB.
    Grey-level images shrink little (the test images from 82 to 59 MB, in 7 s): stored as they
    are."""
    save = np.savez_compressed if compressed else np.savez
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        # np.savez writes zip entries with a fixed timestamp, so equal arrays give equal bytes.
        save(handle, allow_pickle=False, **arrays)


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of an npz written by `save_arrays` (never unpickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def save_json(path: str | os.PathLike, obj) -> None:
    """Write `obj` as standard JSON, atomically: NaN and infinities (an IoU of a class that is
    neither true nor predicted) become null, which jq and other readers take."""
    text = json.dumps(_finite_or_null(obj), indent=2, sort_keys=True, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def _finite_or_null(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: _finite_or_null(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_null(value) for value in obj]
    return obj


def load_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


def _check_numeric(name: str, array: np.ndarray) -> None:
    if array.dtype.kind not in "iuf":  # numpy counts timedelta64 among its integers
        raise InputError(
            f"'{name}' has dtype {array.dtype}, which is not numeric. "
            "Fix: store images and masks as integer or float arrays (the course file uses float64)."
        )
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise InputError(
            f"'{name}' holds {bad} NaN or infinite values. "
            "Fix: repair or drop those images before running the workflow."
        )


def validate_images(name: str, images: np.ndarray) -> np.ndarray:
    """Check grey images are finite and within 0-255; return them as uint8 (rounded a chunk at a
    time, so that no float copy of the whole stack is made)."""
    _check_numeric(name, images)
    low, high = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
    if low < 0 or high > 255:
        raise InputError(
            f"'{name}' has grey levels from {low:.10g} to {high:.10g}, outside 0-255. "
            "Fix: give 8-bit grey levels (0-255), as in the course file; do not pre-normalise."
        )
    # No stack of 8-bit tiles is brightest at grey level 1: whatever its dtype (0-1 floats cast
    # to uint8 hold 0 and 1 only), it was normalised. All black (0 to 0) is taken as it is.
    if 0 < high <= 1:
        raise InputError(
            f"'{name}' has grey levels from {low:.10g} to {high:.10g}: it looks normalised to 0-1. "
            "Fix: give 8-bit grey levels (0-255), as in the course file (multiply the 0-1 floats "
            "by 255, before any rounding or cast to integers)."
        )
    as_uint8 = np.empty(images.shape, dtype=np.uint8)
    for start in range(0, len(images), CHUNK_IMAGES):
        as_uint8[start : start + CHUNK_IMAGES] = np.rint(images[start : start + CHUNK_IMAGES])
    return as_uint8


def validate_masks(name: str, masks: np.ndarray) -> np.ndarray:
    """Check masks hold integer labels 0-4; return them as uint8."""
    _check_numeric(name, masks)
    if masks.size and (masks.min() < 0 or masks.max() > NUM_CLASSES - 1):
        raise InputError(
            f"'{name}' has labels from {masks.min():.10g} to {masks.max():.10g}, outside 0-4 "
            "(0 background, 1 soil, 2 bedrock, 3 sand, 4 big rock). "
            "Fix: map your labels to 0-4."
        )
    if np.issubdtype(masks.dtype, np.floating) and not np.array_equal(masks, np.rint(masks)):
        raise InputError(
            f"'{name}' has non-integer labels. Fix: masks must hold whole numbers 0-4."
        )
    return masks.astype(np.uint8)


def load_course_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load and validate a file in the layout of the course's `mars_for_students.npz`.

    Returns uint8 arrays: `train_images` and `train_masks` (N, 64, 128), `test_images` (M, 64, 128).
    Raises InputError naming the problem and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"raw data file '{path}' does not exist. Fix: set `raw_data` in config.yaml to the path "
            "of mars_for_students.npz, or to `synthetic` for the embedded synthetic dataset."
        )
    if not zipfile.is_zipfile(path):  # an empty file, a .npy array, text...
        raise InputError(
            f"'{path}' is not an npz archive (the zip of arrays np.savez writes). "
            "Fix: point `raw_data` at the course file mars_for_students.npz, or save your arrays "
            "with np.savez(path, training_set=..., test_set=...)."
        )
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(
            f"'{path}' is not a readable npz file ({error}). "
            "Fix: point `raw_data` at the course file mars_for_students.npz."
        ) from error
    with data:
        missing = [key for key in COURSE_KEYS if key not in data.files]
        if missing:
            raise InputError(
                f"'{path}' lacks the key(s) {missing}; it has {sorted(data.files)}. "
                "Fix: the file needs 'training_set' (N, 2, 64, 128) and 'test_set' (M, 64, 128), "
                "as in the course's mars_for_students.npz."
            )
        # One array at a time: the course file's float64 test images alone take 657 MB.
        training_set = _read_array(data, "training_set", path)
        if training_set.ndim != 4 or training_set.shape[1:] != (2, IMAGE_HEIGHT, IMAGE_WIDTH):
            raise InputError(
                f"'training_set' has shape {training_set.shape}; expected (N, 2, 64, 128) with "
                "[:, 0] the images and [:, 1] the masks. Fix: stack image and mask pairs that way."
            )
        if len(training_set) == 0:
            raise InputError(
                "'training_set' holds no images. Fix: give at least a few labelled images."
            )
        labelled = {
            "train_images": validate_images("training_set[:, 0] (images)", training_set[:, 0]),
            "train_masks": validate_masks("training_set[:, 1] (masks)", training_set[:, 1]),
        }
        del training_set
        test_set = _read_array(data, "test_set", path)
    if test_set.ndim != 3 or test_set.shape[1:] != (IMAGE_HEIGHT, IMAGE_WIDTH):
        raise InputError(
            f"'test_set' has shape {test_set.shape}; expected (M, 64, 128). "
            "Fix: store the test images as a stack of 64x128 grey images."
        )
    if len(test_set) == 0:
        raise InputError(
            "'test_set' holds no images, so there is nothing to submit. "
            "Fix: give the test images to predict (the course file has 10022)."
        )
    return {**labelled, "test_images": validate_images("test_set", test_set)}


def _read_array(data, key: str, path: Path) -> np.ndarray:
    """`data[key]` as an array, or an InputError: an object array (which needs pickle, refused),
    a damaged member (bad CRC, broken compression, cut short, a bad .npy header) or a member that
    is not a .npy array at all (np.load then hands back its raw bytes)."""
    try:
        array = data[key]
    except ValueError as error:
        if "allow_pickle" not in str(error):
            raise _damaged(path, key, error) from error
        raise InputError(
            f"'{path}' holds object arrays ({error}). Fix: store plain numeric arrays."
        ) from error
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise _damaged(path, key, error) from error
    if not isinstance(array, np.ndarray):
        raise _damaged(path, key, "the member is not a .npy array")
    return array


def _damaged(path: Path, key: str, reason) -> InputError:
    return InputError(
        f"'{key}' in '{path}' cannot be read as an array ({reason}): the file is damaged "
        "(an interrupted download or copy?) or was not written by np.savez. "
        "Fix: fetch the course file mars_for_students.npz again, or re-save your arrays with "
        "np.savez(path, training_set=..., test_set=...)."
    )
