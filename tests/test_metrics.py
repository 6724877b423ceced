import numpy as np
import pytest
from sklearn.metrics import jaccard_score

from marsseg.metrics import confusion_matrix, mean_iou, per_class_iou, score


def test_confusion_matrix_drops_background_truth_and_counts_predicted_zero():
    truth = np.array([[0, 1, 1, 2], [3, 4, 2, 0]])
    pred = np.array([[3, 1, 0, 2], [3, 1, 2, 4]])
    cm = confusion_matrix(truth, pred)
    expected = np.zeros((5, 5), dtype=int)
    expected[1, 1] = 1
    expected[1, 0] = 1  # predicting background on a labelled pixel is an error
    expected[2, 2] = 2
    expected[3, 3] = 1
    expected[4, 1] = 1
    np.testing.assert_array_equal(cm, expected)


def test_iou_by_hand():
    truth = np.array([[0, 1, 1, 2], [3, 4, 2, 0]])
    pred = np.array([[3, 1, 0, 2], [3, 1, 2, 4]])
    iou = per_class_iou(confusion_matrix(truth, pred))
    # soil: TP 1, FN 1 (pred 0), FP 1 (big rock pixel predicted soil) -> 1/3
    assert iou[1] == pytest.approx(1 / 3)
    assert iou[2] == pytest.approx(1.0)
    assert iou[3] == pytest.approx(1.0)  # the background pixel predicted 3 is not counted
    assert iou[4] == pytest.approx(0.0)  # truth 4 once, never predicted as 4 on a labelled pixel
    assert mean_iou(confusion_matrix(truth, pred)) == pytest.approx((1 / 3 + 1 + 1 + 0) / 4)


def test_classes_absent_from_truth_and_prediction_are_left_out_of_the_mean():
    truth = np.array([1, 1, 2, 2])
    pred = np.array([1, 1, 2, 1])
    result = score(truth, pred)
    assert np.isnan(result["per_class_iou"]["3"]) and np.isnan(result["per_class_iou"]["4"])
    assert result["mean_iou"] == pytest.approx((2 / 3 + 1 / 2) / 2)


@pytest.mark.parametrize("seed", range(5))
def test_equals_sklearn_jaccard_on_labelled_pixels(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, size=(7, 16, 16))
    pred = rng.integers(0, 5, size=(7, 16, 16))
    labelled = truth != 0
    expected = jaccard_score(
        truth[labelled], pred[labelled], labels=[1, 2, 3, 4], average="macro", zero_division=0
    )
    assert mean_iou(confusion_matrix(truth, pred)) == pytest.approx(expected)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="pixels"):
        confusion_matrix(np.zeros(4), np.zeros(5))


def test_chunked_counts_equal_one_pass_and_reject_labels_above_4():
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 5, size=(3, 64, 128), dtype=np.uint8)
    pred = rng.integers(0, 5, size=(3, 64, 128), dtype=np.uint8)
    expected = np.zeros((5, 5), dtype=np.int64)
    np.add.at(expected, (truth[truth != 0], pred[truth != 0]), 1)
    for chunk in (1000, 4096, 1 << 20):  # 1000 leaves a partial last chunk
        np.testing.assert_array_equal(confusion_matrix(truth, pred, chunk=chunk), expected)
    assert confusion_matrix(truth, pred).sum() == np.count_nonzero(truth)
    pred[2, 5, 5] = 7
    with pytest.raises(ValueError, match="0-4"):
        confusion_matrix(truth, pred)


@pytest.mark.parametrize("bad", [260, -252, 4.5, -1, 5])
def test_labels_out_of_range_or_fractional_are_refused_not_wrapped(bad):
    """260 and -252 would wrap to 4 in uint8 (a perfect score here), 4.5 would be cut to 4."""
    truth = np.array([1, 2, 3, 4])
    for pred in (np.array([1, 2, 3, bad]), np.array([1.0, 2.0, 3.0, bad])):
        with pytest.raises(ValueError, match="0-4"):
            score(truth, pred)
        with pytest.raises(ValueError, match="0-4"):
            score(pred, truth)
    assert score(truth, np.array([1.0, 2.0, 3.0, 4.0]))["mean_iou"] == 1.0
