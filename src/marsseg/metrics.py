"""The course-exact metric: mean IoU over classes 1-4 from one pooled confusion matrix.

Pixels whose true label is 0 (background, "not labelled") are dropped; predicting 0 on a labelled
pixel counts as an error for the true class. IoU_c = TP / (TP + FP + FN); the mean runs over the
scored classes whose union is non-zero. This is the one implementation used by training,
scoring and the tables.
"""

from __future__ import annotations

import numpy as np

from marsseg import NUM_CLASSES, SCORED_CLASSES


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """5x5 counts, rows = true label, columns = predicted label, over labelled pixels only."""
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} pixels but y_pred has {y_pred.size}")
    labelled = y_true != 0
    codes = y_true[labelled].astype(np.int64) * NUM_CLASSES + y_pred[labelled].astype(np.int64)
    counts = np.bincount(codes, minlength=NUM_CLASSES * NUM_CLASSES)
    return counts.reshape(NUM_CLASSES, NUM_CLASSES)


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
