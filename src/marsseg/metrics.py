"""The course-exact metric: mean IoU over classes 1-4 from one pooled confusion matrix.

Pixels whose true label is 0 (background, "not labelled") are dropped; predicting 0 on a labelled
pixel counts as an error for the true class. IoU_c = TP / (TP + FP + FN); the mean runs over the
scored classes whose union is non-zero. This is the one implementation used by training,
scoring and the tables.
"""

from __future__ import annotations

import numpy as np

from marsseg import NUM_CLASSES, SCORED_CLASSES


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """5x5 counts, rows = true label, columns = predicted label, over labelled pixels only.

    One np.bincount of `true * 5 + predicted` per `chunk` pixels, so that memory stays flat; the
    row of true label 0 is then dropped (set to 0).
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} pixels but y_pred has {y_pred.size}")
    counts = np.zeros(NUM_CLASSES * NUM_CLASSES, dtype=np.int64)
    for start in range(0, y_true.size, chunk):
        true = as_labels(y_true[start : start + chunk])
        predicted = as_labels(y_pred[start : start + chunk])
        counts += np.bincount(true * NUM_CLASSES + predicted, minlength=NUM_CLASSES * NUM_CLASSES)
    confusion = counts.reshape(NUM_CLASSES, NUM_CLASSES)
    confusion[0] = 0  # pixels whose true label is 0 are not labelled: never scored
    return confusion


def as_labels(values: np.ndarray, what: str = "labels") -> np.ndarray:
    """Labels 0-4 as uint8, checked before the cast (which would wrap 260 or -252 round to 4,
    and cut 1.5 to 1): ValueError "`what` must be whole numbers 0-4" otherwise."""
    values = np.asarray(values)
    whole = values.dtype.kind in "iub" or np.array_equal(values, np.rint(values))
    if values.size and (values.min() < 0 or values.max() >= NUM_CLASSES or not whole):
        raise ValueError(f"{what} must be whole numbers 0-{NUM_CLASSES - 1}")
    return values.astype(np.uint8)


def per_class_iou(confusion: np.ndarray) -> dict[int, float]:
    """IoU of each scored class (NaN where the class is neither true nor predicted)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    result = {}
    for c in SCORED_CLASSES:
        tp = confusion[c, c]
        union = confusion[c, :].sum() + confusion[:, c].sum() - tp
        result[c] = float(tp / union) if union > 0 else float("nan")
    return result


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the scored classes with a non-zero union (NaN if there is none)."""
    values = [v for v in per_class_iou(confusion).values() if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def score(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Mean IoU, per-class IoU and the confusion matrix, ready to be written as JSON."""
    confusion = confusion_matrix(y_true, y_pred)
    return {
        "mean_iou": mean_iou(confusion),
        "per_class_iou": {str(c): v for c, v in per_class_iou(confusion).items()},
        "confusion_matrix": confusion.tolist(),
    }
