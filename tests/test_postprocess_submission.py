from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from marsseg.io import load_arrays, save_arrays
from marsseg.postprocess import apply_method, nearest_label
from marsseg.steps import postprocess, submission
from marsseg.submission import read_submission, write_submission


def nearest_label_per_image(labels, all_background_label=4):
    """The reference: scipy's exact distance transform on each mask, one at a time."""
    out = labels.copy()
    for i, mask in enumerate(labels):
        zero = mask == 0
        if zero.all():
            if all_background_label is not None:
                out[i] = all_background_label
        elif zero.any():
            _, (rows, cols) = ndimage.distance_transform_edt(zero, return_indices=True)
            out[i] = mask[rows, cols]
    return out


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        # the nearest label; a tie between columns goes to the left one
        ([[1, 0, 0, 0, 2]], [[1, 1, 1, 2, 2]]),
        # a tie within one column goes to the upper row
        ([[1], [0], [3]], [[1], [1], [3]]),
        # diagonal ties (distance sqrt 2 and 2): the left column wins
        ([[0, 0, 2], [0, 0, 0], [3, 0, 0]], [[3, 2, 2], [3, 3, 2], [3, 3, 3]]),
        # far from every label (the distance transform's part): corners (0, 4) and (4, 0) and the
        # anti-diagonal are equally far from both labels and go to the left column's label 1
        (
            [[1, 0, 0, 0, 0]] + [[0] * 5] * 3 + [[0, 0, 0, 0, 2]],
            [
                [1, 1, 1, 1, 1],
                [1, 1, 1, 1, 2],
                [1, 1, 1, 2, 2],
                [1, 1, 2, 2, 2],
                [1, 2, 2, 2, 2],
            ],
        ),
        # labels in one column, rows 0 and 4: row 2 is equally far from both, the upper one wins
        ([[0, 0, 1, 0, 0]] + [[0] * 5] * 3 + [[0, 0, 3, 0, 0]], [[1] * 5] * 3 + [[3] * 5] * 2),
    ],
)
def test_nearest_label_by_hand_ties_included(mask, expected):
    masks = np.array(mask, dtype=np.uint8)[None]
    np.testing.assert_array_equal(nearest_label(masks)[0], expected)
    np.testing.assert_array_equal(nearest_label_per_image(masks)[0], expected)


def test_nearest_label_all_zero_and_no_zero():
    masks = np.zeros((3, 4, 4), dtype=np.uint8)
    masks[1] = 3
    masks[2, 0, 0] = 2  # one label: everything becomes 2
    out = nearest_label(masks, all_background_label=4)
    assert (out[0] == 4).all() and (out[1] == 3).all() and (out[2] == 2).all()
    assert (nearest_label(masks, all_background_label=1)[0] == 1).all()
    switched_off = nearest_label(masks, all_background_label=None)
    assert (switched_off[0] == 0).all() and (switched_off[2] == 2).all()
    assert nearest_label(np.zeros((0, 4, 4), dtype=np.uint8)).shape == (0, 4, 4)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("all_background_label", [4, None])
def test_nearest_label_equals_the_per_image_distance_transform(seed, all_background_label):
    """Random masks: scattered 0s of every density (first half), one 0 blob far from the labels
    around it (third quarter), both (last quarter), an all-0 mask and one without 0; chunk sizes
    masks of every shape."""
    rng = np.random.default_rng(seed)
    n, height, width = 40, int(rng.integers(1, 40)), int(rng.integers(1, 70))
    masks = rng.integers(1, 5, (n, height, width), dtype=np.uint8)
    density = rng.uniform(0, 1, n)[:, None, None]
    density[n // 2 : 3 * n // 4] = 0
    masks[rng.random((n, height, width)) < density] = 0
    for i in range(n // 2, n):
        top, left = rng.integers(0, height), rng.integers(0, width)
        masks[
            i, top : top + rng.integers(1, height + 1), left : left + rng.integers(1, width + 1)
        ] = 0
    masks[0] = 0
    masks[1] = 2
    expected = nearest_label_per_image(masks, all_background_label)
    np.testing.assert_array_equal(nearest_label(masks, all_background_label), expected)


def test_methods():
    labels = np.array([[[0, 2], [3, 0]], [[0, 0], [0, 0]]], dtype=np.uint8)
    no_bg = np.array([[[1, 2], [3, 4]], [[1, 1], [1, 1]]], dtype=np.uint8)
    assert apply_method("none", labels, no_bg) is labels
    assert apply_method("no_background", labels, no_bg) is no_bg
    # each 0 is as near the 2 as the 3: the left column's 3 wins; the all-0 mask becomes 4
    filled = apply_method("nearest_label", labels, no_bg)
    np.testing.assert_array_equal(filled, [[[3, 2], [3, 3]], [[4, 4], [4, 4]]])
    kept = apply_method("nearest_label", labels, no_bg, all_background_label=None)
    np.testing.assert_array_equal(kept[1], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="unknown post-processing method 'nearest'"):
        apply_method("nearest", labels, no_bg)


@pytest.mark.parametrize("tta", [False, True])
@pytest.mark.parametrize("method", ["none", "no_background"])
def test_postprocess_takes_the_maps_of_its_method_and_tta_for_both_splits(
    tmp_path, rng, tta, method
):
    maps = {
        f"{split}_{prefix}{key}": rng.integers(0, 5, (2, 4, 4), dtype=np.uint8)
        for split in ("val", "test")
        for prefix in ("", "tta_")
        for key in ("labels", "labels_no_background")
    }
    save_arrays(tmp_path / "predicted.npz", **maps)
    postprocess(str(tmp_path / "predicted.npz"), str(tmp_path / "out.npz"), method, 4, tta)
    out = load_arrays(tmp_path / "out.npz")
    key = ("tta_" if tta else "") + ("labels" if method == "none" else "labels_no_background")
    assert sorted(out) == ["test", "val"]
    np.testing.assert_array_equal(out["val"], maps[f"val_{key}"])
    np.testing.assert_array_equal(out["test"], maps[f"test_{key}"])


def test_submission_round_trip(tmp_path, rng):
    masks = rng.integers(0, 5, (7, 64, 128), dtype=np.uint8)
    path = tmp_path / "submission.csv"
    write_submission(path, masks)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("id,0,1,2,") and lines[0].endswith(",8191")
    assert len(lines) == 8 and lines[3].startswith("2,")
    assert lines[1].split(",")[1:4] == [str(v) for v in masks[0, 0, :3]]
    np.testing.assert_array_equal(read_submission(path), masks)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda lines: ["ID" + lines[0][2:], *lines[1:]], "the header is not id,0,...,8191"),
        (lambda lines: [*lines[:2], "5" + lines[2][1:]], "row 1 is not a valid"),  # id 5, not 1
        (lambda lines: [lines[0], lines[1][:-1] + "7", *lines[2:]], "row 0 is not a valid"),
        (lambda lines: [lines[0], lines[1][:-2], *lines[2:]], "row 0 is not a valid"),  # short
    ],
)
def test_a_damaged_submission_is_refused_when_read(tmp_path, rng, damage, message):
    path = tmp_path / "submission.csv"
    write_submission(path, rng.integers(0, 5, (2, 64, 128), dtype=np.uint8))
    path.write_text("\n".join(damage(path.read_text().splitlines())) + "\n")
    with pytest.raises(ValueError, match=message):
        read_submission(path)


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        (np.full((2, 64, 128), 7, np.uint8), "whole numbers 0-4"),  # was written, unreadable
        (np.full((2, 64, 128), 1.5), "whole numbers 0-4"),  # was cut to 1
        (np.ones((2, 128, 64), np.uint8), r"\(N, 64, 128\)"),  # transposed: 8192 values too
        (np.ones((2, 8192), np.uint8), r"\(N, 64, 128\)"),
    ],
)
def test_a_submission_is_refused_for_labels_or_shapes_the_course_cannot_read(
    tmp_path, masks, message
):
    path = tmp_path / "submission.csv"
    with pytest.raises(ValueError, match=message):
        write_submission(path, masks)
    assert not path.exists()
    write_submission(path, np.full((2, 64, 128), 4.0))  # float labels that are whole are fine
    assert (read_submission(path) == 4).all()


def test_submissions_of_the_best_row_and_of_each_variant(tmp_path, monkeypatch, rng):
    """Each variant's CSV holds its best row's test masks (method and TTA); submission.csv the
    best row's."""
    monkeypatch.chdir(tmp_path)
    table = pd.DataFrame(
        {  # sorted by mIoU, as the comparison table is
            "variant": ["a", "b", "a", "b", "b"],
            "tta": ["off", "on", "off", "off", "on"],
            "postprocessing": ["nearest_label", "none", "none", "nearest_label", "nearest_label"],
            "miou_mean": [0.6, 0.5, 0.4, 0.3, 0.2],
        }
    )
    table.to_csv("comparison.csv", index=False)
    test_masks, sources = {}, {}
    for row in table[["variant", "tta", "postprocessing"]].itertuples(index=False):
        test_masks[row] = rng.integers(0, 5, (3, 64, 128), dtype=np.uint8)
        sources[row] = f"postprocessed/{len(sources)}.npz"
        save_arrays(sources[row], test=test_masks[row])
    for variant, best in [("a", ("off", "nearest_label")), ("b", ("on", "none"))]:
        submission("comparison.csv", sources, f"submissions/{variant}.csv", variant)
        np.testing.assert_array_equal(
            read_submission(f"submissions/{variant}.csv"), test_masks[(variant, *best)]
        )
    submission("comparison.csv", sources, "submission.csv")
    assert Path("submission.csv").read_bytes() == Path("submissions/a.csv").read_bytes()
    with pytest.raises(ValueError, match="no row of variant 'c'"):
        submission("comparison.csv", sources, "c.csv", "c")


@pytest.mark.parametrize("name", ["NA", "null", "None", "nan", "True"])
def test_the_submission_of_a_variant_whose_name_pandas_reads_as_nan_or_bool(
    tmp_path, monkeypatch, rng, name
):
    """Such names are valid variant names; read with pandas' defaults the table gave NaN or
    True for them, so no source matched (a KeyError, or "no row of variant 'NA'")."""
    monkeypatch.chdir(tmp_path)
    pd.DataFrame(
        {"variant": [name], "tta": ["off"], "postprocessing": ["none"], "miou_mean": [0.5]}
    ).to_csv("comparison.csv", index=False)
    masks = rng.integers(0, 5, (2, 64, 128), dtype=np.uint8)
    save_arrays("p.npz", test=masks)
    for variant in (None, name):
        submission("comparison.csv", {(name, "off", "none"): "p.npz"}, "s.csv", variant)
        np.testing.assert_array_equal(read_submission("s.csv"), masks)
