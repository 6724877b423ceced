"""Tests of the synthetic course-format dataset (marsseg.synthetic) and its comparison figure."""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np
import pytest
from scipy import ndimage

from marsseg.synthetic import (
    ALIEN_MASK_SHARES,
    _bspline_taps,
    _cast_shadow,
    _dilate_3x3,
    _exact_taps_last_axis,
    _exact_taps_middle_axis,
    _layout_counts,
    _spline_taps,
    generate_course_dataset,
)

COURSE_SHARES = np.array([24.31, 33.90, 23.28, 18.38])  # bg, soil, bedrock, sand (%), no aliens


def _groups(masks: np.ndarray) -> list[list[int]]:
    """Indices of identical masks, largest group first."""
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i, m in enumerate(np.ascontiguousarray(masks, np.uint8)):
        groups[hashlib.blake2b(m.tobytes(), digest_size=16).digest()].append(i)
    return sorted(groups.values(), key=len, reverse=True)


@pytest.fixture(scope="module")
def moderate():
    """600 training images with 5 aliens (the workflow's tiny-data setting: threshold 3)."""
    return generate_course_dataset(seed=0, n_train=600, n_test=10, n_aliens=5)


def test_shapes_dtypes_and_value_ranges(moderate):
    training_set, test_set, test_masks = moderate
    assert training_set.shape == (600, 2, 64, 128)
    assert training_set.dtype == np.float64
    assert test_set.shape == (10, 64, 128)
    assert test_set.dtype == np.float64
    assert test_masks.shape == (10, 64, 128)
    assert test_masks.dtype == np.uint8

    images, masks = training_set[:, 0], training_set[:, 1]
    for arr in (images, test_set):
        assert np.array_equal(arr, np.rint(arr))  # integer-valued grey levels
        assert arr.min() >= 0 and arr.max() <= 255
        assert arr.std() > 10  # real contrast, not a flat image
    assert set(np.unique(masks).tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}
    assert set(np.unique(test_masks).tolist()) <= {0, 1, 2, 3, 4}
    # image brightness varies between images like NAVCAM frames
    means = images.mean(axis=(1, 2))
    assert 35 < np.median(means) < 80
    assert np.percentile(means, 95) - np.percentile(means, 5) > 25


def test_aliens_share_one_mask_and_no_other_group_is_large(moderate):
    training_set = moderate[0]
    groups = _groups(training_set[:, 1])
    aliens = groups[0]
    assert len(aliens) == 5
    assert len(groups[1]) <= 2  # small data: duplicates and all-background groups stay at 2
    alien_mask = training_set[aliens[0], 1]
    shares = np.bincount(alien_mask.astype(np.uint8).ravel(), minlength=5) / alien_mask.size
    assert np.allclose(shares[:4], ALIEN_MASK_SHARES, atol=0.005)
    assert shares[4] == 0.0
    # the alien is pasted at a different size / place each time: the images all differ
    alien_images = training_set[aliens, 0].reshape(len(aliens), -1)
    assert len({row.tobytes() for row in alien_images}) == len(aliens)
    # and they are spread over the set, not one block
    assert max(aliens) - min(aliens) > 100

    all_bg = np.flatnonzero((training_set[:, 1] == 0).all(axis=(1, 2)))
    assert len(all_bg) == 2
    sizes = [len(g) for g in groups[1:] if len(g) > 1]
    assert sizes == [2] * len(sizes) and 3 <= len(sizes) <= 6  # all-background pair + duplicates


def test_clean_class_shares_match_the_course(moderate):
    training_set = moderate[0]
    aliens = set(_groups(training_set[:, 1])[0])
    clean = np.array([i for i in range(len(training_set)) if i not in aliens])
    masks = training_set[clean, 1].astype(np.uint8)
    shares = 100 * np.bincount(masks.ravel(), minlength=5) / masks.size
    assert np.all(np.abs(shares[:4] - COURSE_SHARES) <= 3.0), shares
    assert 0.05 <= shares[4] <= 0.3, shares  # Big Rock about 0.1-0.2 % of pixels
    with_rock = (masks == 4).any(axis=(1, 2)).mean()
    assert 0.01 <= with_rock <= 0.045, with_rock  # in about 2-3 % of the images


def test_background_is_unlabelled_terrain_not_a_texture(moderate):
    training_set = moderate[0]
    images, masks = training_set[:, 0], training_set[:, 1]
    bg_mean, lab_mean = images[masks == 0].mean(), images[masks > 0].mean()
    assert abs(bg_mean - lab_mean) < 10
    # background lies over whole regions of ordinary terrain in many images, not only at the top
    bottom_bg = (masks[:, 32:] == 0).mean(axis=(1, 2))
    assert (bottom_bg > 0.1).mean() > 0.15


def test_course_size_layout_counts():
    n_allbg, dup_sizes = _layout_counts(2615)
    assert n_allbg == 7
    assert 5 <= len(dup_sizes) <= 15
    assert min(dup_sizes) == 2 and max(dup_sizes) == 5
    n_allbg, dup_sizes = _layout_counts(600)
    assert n_allbg == 2 and set(dup_sizes) == {2}


def test_seven_all_background_images_at_course_layout_with_few_test_images():
    training_set, test_set, test_masks = generate_course_dataset(
        seed=1, n_train=1100, n_test=2, n_aliens=40
    )
    groups = _groups(training_set[:, 1])
    assert len(groups[0]) == 40
    assert all(len(g) <= 5 for g in groups[1:])
    all_bg = (training_set[:, 1] == 0).all(axis=(1, 2)).sum()
    assert all_bg == 3  # 7 * 1100 / 2615, rounded
    assert test_set.shape == (2, 64, 128) and test_masks.shape == (2, 64, 128)


def test_spline_taps_sum_exactly_what_the_dense_spline_matrix_gives():
    rng = np.random.default_rng(5)
    u = 1.0 + np.linspace(0.0, 1.0, 128) * 14 * (1 - 1e-4)
    n_in = 17
    a = (rng.standard_normal((50, n_in)) * 3).astype(np.float32)
    # the same spline as a dense matrix, the order-independent sums done by BLAS
    idx, w = _bspline_taps(u, n_in)
    dense = np.zeros((n_in, len(u)))
    for k in range(4):
        np.add.at(dense, (idx[k], np.arange(len(u))), w[k].astype(np.float64))
    dense = np.rint(dense * 2.0**20) / 2.0**20
    expected = (np.rint(a.astype(np.float64) * 1024) / 1024) @ dense
    taps = _spline_taps(u, n_in)
    assert np.array_equal(_exact_taps_last_axis(a, *taps), expected.astype(np.float32))
    stacked = np.ascontiguousarray(np.broadcast_to(a.T[None], (2, n_in, 50)))
    along_rows = _exact_taps_middle_axis(stacked, *taps)
    assert np.array_equal(along_rows[1], expected.T.astype(np.float32))


def test_cast_shadow_and_dilation_match_their_plain_definitions():
    rng = np.random.default_rng(6)
    height = rng.random((9, 64, 128)).astype(np.float32)
    sdy, sdx = rng.integers(-1, 2, 9), rng.integers(-1, 2, 9)
    expected = np.zeros_like(height)
    for k in (1, 2, 3, 5):  # the height k steps towards the light, edges replicated
        ys = np.clip(np.arange(64)[None, :] + sdy[:, None] * k, 0, 63)
        xs = np.clip(np.arange(128)[None, :] + sdx[:, None] * k, 0, 127)
        shifted = height[np.arange(9)[:, None, None], ys[:, :, None], xs[:, None, :]]
        expected = np.maximum(expected, shifted - np.float32(0.35 * k))
    assert np.array_equal(_cast_shadow(height, sdy, sdx), expected)
    m = rng.random((4, 64, 128)) < 0.05
    square = ndimage.binary_dilation(m, structure=np.ones((1, 3, 3), bool))
    assert np.array_equal(_dilate_3x3(m), square)


def test_deterministic_for_a_seed_and_different_for_another():
    a = generate_course_dataset(seed=3, n_train=40, n_test=5, n_aliens=3)
    b = generate_course_dataset(seed=3, n_train=40, n_test=5, n_aliens=3)
    c = generate_course_dataset(seed=4, n_train=40, n_test=5, n_aliens=3)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    for x, z in zip(a, c, strict=True):
        assert x.tobytes() != z.tobytes()


def test_test_masks_are_separate_hidden_labels(moderate):
    training_set, test_set, test_masks = moderate
    assert test_masks.max() <= 4
    labelled = (test_masks > 0).mean(axis=(1, 2))
    assert labelled.min() > 0.05  # every test image has labels to score
    # test images are new images, not copies of training images
    train_bytes = {img.tobytes() for img in training_set[:, 0]}
    assert not any(img.tobytes() in train_bytes for img in test_set)
    assert len(np.unique(test_masks)) >= 3
    # the masks describe the test images as the training masks describe theirs: neighbouring
    # pixels on either side of a border between two labelled classes differ in grey level about
    # twice as much as neighbours within one class (each class has its own tone and texture)
    train_ratio = _border_contrast(training_set[:, 0], training_set[:, 1])
    test_ratio = _border_contrast(test_set, test_masks)
    assert train_ratio > 1.7
    assert abs(test_ratio - train_ratio) < 0.3, (test_ratio, train_ratio)
    # the control: each test image with the next one's mask shows no such borders
    assert _border_contrast(test_set, np.roll(test_masks, 1, axis=0)) < 1.3


def _border_contrast(images: np.ndarray, masks: np.ndarray) -> float:
    """Mean absolute grey-level difference of neighbouring pixels (in rows and in columns) with
    two different labelled classes, over that of neighbours with the same labelled class."""
    images, masks = images.astype(np.float64), masks.astype(np.uint8)
    across = within = n_across = n_within = 0
    for axis in (1, 2):
        difference = np.abs(np.diff(images, axis=axis))
        one, other = np.delete(masks, -1, axis=axis), np.delete(masks, 0, axis=axis)
        labelled = (one > 0) & (other > 0)
        border, inside = labelled & (one != other), labelled & (one == other)
        across, n_across = across + difference[border].sum(), n_across + border.sum()
        within, n_within = within + difference[inside].sum(), n_within + inside.sum()
    return float((across / n_across) / (within / n_within))


def test_argument_checks():
    with pytest.raises(ValueError, match=r"^n_aliens \(5\) exceeds n_train \(3\)$"):
        generate_course_dataset(seed=0, n_train=3, n_test=1, n_aliens=5)
    with pytest.raises(ValueError, match="n_train, n_test and n_aliens must be non-negative"):
        generate_course_dataset(seed=0, n_train=-1, n_test=1, n_aliens=0)
    training_set, test_set, test_masks = generate_course_dataset(
        seed=0, n_train=0, n_test=0, n_aliens=0
    )
    assert training_set.shape == (0, 2, 64, 128) and test_set.shape == (0, 64, 128)


def test_figure_is_written_and_small(tmp_path, moderate):
    pytest.importorskip("matplotlib")
    from marsseg.synthetic_figure import plot_synthetic_vs_real

    training_set = moderate[0]
    fake_real = training_set[::-1].astype(np.uint8)  # any uint8 course-format array will do
    out = tmp_path / "fig.png"
    plot_synthetic_vs_real(training_set, fake_real, str(out), n=4, seed=1)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 5_000 < len(data) < 300_000
