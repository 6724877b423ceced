import numpy as np
import pytest

from marsseg.errors import InputError
from marsseg.split import split_indices


def masks_with_big_rock(n, big_rock_images):
    masks = np.ones((n, 64, 128), dtype=np.uint8)
    masks[big_rock_images, 10:12, 10:12] = 4
    return masks


def test_partition_fraction_and_stratification():
    masks = masks_with_big_rock(100, [3, 17, 42, 50, 77])
    train, val = split_indices(masks, 0.2, seed=5)
    assert len(val) == 20 and len(train) == 80
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(100))
    assert len(np.intersect1d(val, [3, 17, 42, 50, 77])) == 1  # round(0.2 * 5)
    assert len(np.intersect1d(train, [3, 17, 42, 50, 77])) == 4


def test_two_big_rock_images_go_one_each_side():
    masks = masks_with_big_rock(40, [0, 1])
    train, val = split_indices(masks, 0.2, seed=0)
    assert len(np.intersect1d(train, [0, 1])) == 1
    assert len(np.intersect1d(val, [0, 1])) == 1


def test_same_seed_same_split_other_seed_other_split():
    masks = masks_with_big_rock(60, [5, 9, 30])
    a = split_indices(masks, 0.2, seed=11)
    b = split_indices(masks, 0.2, seed=11)
    c = split_indices(masks, 0.2, seed=12)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("fraction", [0, 1, -0.2, 1.5])
def test_a_fraction_outside_0_1_is_named(fraction):
    with pytest.raises(InputError, match=f"split.val_fraction is {fraction}; it must lie strictly"):
        split_indices(masks_with_big_rock(10, [0, 1]), fraction, seed=0)


def test_too_few_images():
    with pytest.raises(InputError, match="only 1 image"):
        split_indices(masks_with_big_rock(1, []), 0.2, seed=0)


def test_one_image_per_stratum_names_the_stratification_as_the_way_out():
    """Two images, one with Big Rock: each stratum of one goes wholly to one side whatever the
    fraction, so 'pick a fraction' alone could never help."""
    masks = masks_with_big_rock(2, [0])
    for fraction in (0.2, 0.5, 0.9):
        with pytest.raises(InputError, match="or set split.stratify_on_big_rock to false"):
            split_indices(masks, fraction, seed=0)
    train, val = split_indices(masks, 0.5, seed=0, stratify_on_big_rock=False)
    assert len(train) == 1 and len(val) == 1
