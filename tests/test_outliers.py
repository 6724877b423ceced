import numpy as np
import pytest

from marsseg.errors import InputError
from marsseg.outliers import find_outliers


def masks_with_groups(rng, n_unique, groups):
    """n_unique random masks plus, for each size in `groups`, that many copies of one mask."""
    masks = [rng.integers(0, 5, (64, 128), dtype=np.uint8) for _ in range(n_unique)]
    for size in groups:
        shared = rng.integers(0, 5, (64, 128), dtype=np.uint8)
        masks += [shared] * size
    order = rng.permutation(len(masks))
    return np.stack(masks)[order], order


def test_drops_exactly_the_planted_large_group(rng):
    masks, order = masks_with_groups(rng, n_unique=30, groups=[12, 3, 2])
    keep, report = find_outliers(masks, max_group_size=5)
    planted = np.flatnonzero((order >= 30) & (order < 42))  # positions of the 12 copies
    np.testing.assert_array_equal(np.flatnonzero(~keep), planted)
    assert report.n_dropped == 12
    assert report.dropped_groups == [{"size": 12, "first_index": int(planted[0])}]
    assert report.largest_groups[:3] == [12, 3, 2]


def test_no_op_without_large_groups(rng):
    masks, _ = masks_with_groups(rng, n_unique=20, groups=[5, 3, 2])  # 5: at the limit, kept
    keep, report = find_outliers(masks, max_group_size=5)
    assert keep.all() and report.n_dropped == 0
    assert report.largest_groups[:4] == [5, 3, 2, 1]


def test_optional_all_background_drop(rng):
    masks, _ = masks_with_groups(rng, n_unique=10, groups=[])
    masks[[2, 7]] = 0
    keep, report = find_outliers(masks, max_group_size=5)
    assert keep.all()
    keep, report = find_outliers(masks, max_group_size=5, drop_all_background=True)
    assert np.flatnonzero(~keep).tolist() == [2, 7]
    assert report.dropped_all_background == [2, 7]


def test_empty_after_filtering_is_a_clear_error(rng):
    masks = np.zeros((6, 64, 128), dtype=np.uint8)
    with pytest.raises(InputError) as caught:
        find_outliers(masks, max_group_size=5)
    assert str(caught.value) == (
        "the outlier filter dropped all 6 images (groups of identical masks larger than 5). "
        "Fix: raise outliers.max_group_size."  # drop_all_background is off already
    )
    with pytest.raises(InputError, match=r"Fix: raise outliers.max_group_size or set outliers"):
        find_outliers(masks, max_group_size=10, drop_all_background=True)
