import numpy as np

from marsseg.postprocess import apply_method, nearest_label
from marsseg.submission import read_submission, write_submission


def test_nearest_label_fills_zeros_from_nearest_labelled_pixel():
    mask = np.array([[1, 0, 0, 0, 2]], dtype=np.uint8)[None]
    out = nearest_label(mask)
    # distances: pixel 1 -> 1 (d=1) ; pixel 2 -> tie (1 at d=2, 2 at d=2); pixel 3 -> 2
    assert out[0, 0, 1] == 1 and out[0, 0, 3] == 2
    assert out[0, 0, 2] in (1, 2)
    assert (out != 0).all()


def test_nearest_label_all_zero_and_no_zero():
    masks = np.zeros((2, 4, 4), dtype=np.uint8)
    masks[1] = 3
    out = nearest_label(masks, all_background_label=4)
    assert (out[0] == 4).all() and (out[1] == 3).all()
    assert (nearest_label(masks, all_background_label=None)[0] == 0).all()


def test_methods():
    labels = np.array([[[0, 2], [3, 0]]], dtype=np.uint8)
    no_bg = np.array([[[1, 2], [3, 4]]], dtype=np.uint8)
    assert apply_method("none", labels, no_bg) is labels
    assert apply_method("no_background", labels, no_bg) is no_bg
    assert (apply_method("nearest_label", labels, no_bg) != 0).all()


def test_submission_round_trip(tmp_path, rng):
    masks = rng.integers(0, 5, (7, 64, 128), dtype=np.uint8)
    path = tmp_path / "submission.csv"
    write_submission(path, masks)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("id,0,1,2,") and lines[0].endswith(",8191")
    assert len(lines) == 8 and lines[3].startswith("2,")
    assert lines[1].split(",")[1:4] == [str(v) for v in masks[0, 0, :3]]
    np.testing.assert_array_equal(read_submission(path), masks)
