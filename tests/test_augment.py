import numpy as np
import pytest

from marsseg.augment import AUGMENTATIONS, augment, check_steps
from marsseg.errors import InputError


def mask_shaped_pair(rng, n=6):
    """Images that equal their masks (times 50), so any misalignment shows."""
    masks = rng.integers(0, 5, (n, 64, 128), dtype=np.uint8)
    return (masks * 50).astype(np.uint8), masks


def test_flips_make_four_aligned_copies(rng):
    images, masks = mask_shaped_pair(rng)
    out_images, out_masks = augment(images, masks, [{"name": "flips"}], seed=0)
    assert out_images.shape == (24, 64, 128)
    np.testing.assert_array_equal(out_images, out_masks * 50)
    np.testing.assert_array_equal(out_masks[6:12], masks[:, :, ::-1])
    np.testing.assert_array_equal(out_masks[12:18], masks[:, ::-1, :])
    np.testing.assert_array_equal(out_masks[18:], masks[:, ::-1, ::-1])


@pytest.mark.parametrize("name", ["flips", "rotate180"])
def test_geometric_augmentations_keep_alignment(rng, name):
    images, masks = mask_shaped_pair(rng, 20)
    out_images, out_masks = augment(images, masks, [{"name": name}], seed=3)
    np.testing.assert_array_equal(out_images, out_masks * 50)
    assert out_masks.max() <= 4


@pytest.mark.parametrize(
    "step",
    [
        {"name": "brightness", "max_delta": 30},
        {"name": "contrast", "max_factor": 0.5},
        {"name": "gaussian_noise", "std": 10},
    ],
)
def test_intensity_augmentations_never_touch_masks(rng, step):
    images, masks = mask_shaped_pair(rng)
    out_images, out_masks = augment(images, masks, [step], seed=1)
    np.testing.assert_array_equal(out_masks, masks)
    assert out_images.dtype == np.uint8
    assert not np.array_equal(out_images, images)


def test_rotate180_rotates_about_half(rng):
    images, masks = mask_shaped_pair(rng, 200)
    _, out_masks = augment(images, masks, [{"name": "rotate180", "probability": 0.5}], seed=0)
    rotated = [
        np.array_equal(o, m[::-1, ::-1]) and not np.array_equal(o, m)
        for o, m in zip(out_masks, masks, strict=True)
    ]
    assert 70 < sum(rotated) < 130


def test_same_seed_same_bytes(rng):
    images, masks = mask_shaped_pair(rng)
    steps = [{"name": "flips"}, {"name": "gaussian_noise", "std": 3}]
    a = augment(images, masks, steps, seed=9)
    b = augment(images, masks, steps, seed=9)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()


def test_unknown_augmentation_and_bad_parameter(rng):
    images, masks = mask_shaped_pair(rng)
    with pytest.raises(InputError, match="unknown augmentation 'flipz'"):
        augment(images, masks, [{"name": "flipz"}], seed=0)
    with pytest.raises(
        InputError,
        match=r"augmentation 'brightness' has no parameter\(s\) \['delta'\]\. "
        r"Fix: use max_delta \(default 20\.0\), probability \(default 1\.0\)\.",
    ):
        augment(images, masks, [{"name": "brightness", "delta": 3}], seed=0)
    assert "flips" in AUGMENTATIONS


def images_with_big_rock(rng, n=12):
    images, masks = mask_shaped_pair(rng, n)
    masks[:, :, :] = 1
    masks[0, 5:10, 20:30] = 4  # one rock of 50 pixels in image 0, another in image 1
    masks[1, 40:44, 60:63] = 4
    return (masks * 50).astype(np.uint8), masks


def test_big_rock_copy_paste_adds_aligned_rocks(rng):
    images, masks = images_with_big_rock(rng)
    out_images, out_masks = augment(
        images, masks, [{"name": "big_rock_copy_paste", "probability": 1.0}], seed=2
    )
    np.testing.assert_array_equal(out_images, out_masks * 50)
    rocks_per_image = (out_masks == 4).reshape(len(masks), -1).sum(axis=1)
    assert (rocks_per_image[2:] >= 12).all()  # every other image got at least one pasted rock
    assert rocks_per_image[2:].max() > 50  # max_rocks 2: some image got two (one is 12 or 50)
    assert set(np.unique(out_masks)) == {1, 4}
    step = {"name": "big_rock_copy_paste", "probability": 1.0, "max_rocks": 1}
    rocks_per_image = (augment(images, masks, [step], seed=2)[1] == 4).sum(axis=(1, 2))
    assert set(rocks_per_image[2:]) <= {12, 50}


def test_big_rock_copy_paste_skips_rocks_under_four_pixels(rng):
    masks = np.ones((6, 64, 128), dtype=np.uint8)
    masks[0, 5, 20:23] = 4  # three pixels: too small to paste
    step = {"name": "big_rock_copy_paste", "probability": 1.0}
    _, out_masks = augment((masks * 50).astype(np.uint8), masks, [step], seed=2)
    np.testing.assert_array_equal(out_masks, masks)


def test_cutmix_keeps_alignment_and_targets_big_rock(rng):
    images, masks = mask_shaped_pair(rng, 30)
    out_images, out_masks = augment(images, masks, [{"name": "cutmix", "probability": 1.0}], 4)
    np.testing.assert_array_equal(out_images, out_masks * 50)
    assert (out_masks != masks).reshape(30, -1).any(axis=1).sum() > 20
    # the pasted rectangles (where the labels changed) stay within max_fraction of each side
    step = {"name": "cutmix", "probability": 1.0, "max_fraction": 0.25}
    changed = augment(images, masks, [step], seed=4)[1] != masks
    rows = [np.ptp(np.flatnonzero(c.any(axis=1))) + 1 for c in changed if c.any()]
    columns = [np.ptp(np.flatnonzero(c.any(axis=0))) + 1 for c in changed if c.any()]
    assert 8 < max(rows) <= 16 and 16 < max(columns) <= 32
    images, masks = images_with_big_rock(rng)
    step = {"name": "cutmix", "probability": 1.0, "max_fraction": 1.0, "big_rock_partners": True}
    _, out_masks = augment(images, masks, [step], seed=5)
    assert ((out_masks == 4).reshape(len(masks), -1).any(axis=1)).sum() > 2


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"name": "rotate180", "probability": -3}, "probability to a number from 0 to 1"),
        ({"name": "gaussian_noise", "std": "5"}, "std to a number >= 0"),
        ({"name": "gaussian_noise", "std": -1}, "std to a number >= 0"),
        ({"name": "cutmix", "big_rock_partners": 1}, "big_rock_partners to true or false"),
        # values that crashed the step or turned it into something else
        ({"name": "big_rock_copy_paste", "max_rocks": 0}, "max_rocks to a whole number >= 1"),
        ({"name": "big_rock_copy_paste", "max_rocks": 1.5}, "max_rocks to a whole number >= 1"),
        ({"name": "cutmix", "max_fraction": 2.0}, "max_fraction to a number above 0, at most 1"),
        ({"name": "cutmix", "max_fraction": 0}, "max_fraction to a number above 0, at most 1"),
        ({"name": "contrast", "max_factor": 3}, "max_factor to a number from 0 to 1"),
        ({"name": "brightness", "max_delta": 1e308}, "max_delta to a number from 0 to 255"),
    ],
)
def test_a_step_value_of_the_wrong_kind_is_refused_before_any_work(step, message):
    with pytest.raises(InputError, match=f"augmentation '{step['name']}' has .*Fix: set {message}"):
        check_steps([step])
    check_steps([{"name": "cutmix", "probability": 1, "big_rock_partners": True}])  # fine


@pytest.mark.parametrize(
    "step",
    [
        {"name": "big_rock_copy_paste", "probability": 1, "max_rocks": 1},
        {"name": "cutmix", "probability": 1, "max_fraction": 1},
        {"name": "contrast", "max_factor": 1},
        {"name": "brightness", "max_delta": 255},
    ],
)
def test_the_highest_allowed_values_work(rng, step):
    images = rng.integers(0, 256, (6, 64, 128), dtype=np.uint8)
    masks = rng.integers(0, 4, (6, 64, 128), dtype=np.uint8)
    masks[0, 10:20, 10:20] = 4  # one Big Rock to copy
    out_images, out_masks = augment(images, masks, [step], seed=3)
    assert out_images.shape == (6, 64, 128) and out_images.dtype == np.uint8
    assert not np.array_equal(out_images, images)
    if step["name"] == "contrast":  # factors from 0 to 2: the grey levels never invert
        deviation = images - images.mean(axis=(1, 2), keepdims=True)
        moved = out_images - out_images.mean(axis=(1, 2), keepdims=True)
        assert ((deviation * moved).sum(axis=(1, 2)) >= 0).all()


def test_intensity_steps_work_a_chunk_at_a_time_with_the_whole_stacks_values(rng, monkeypatch):
    """Course-size flipped stacks made float64 copies of 525 MB each (contrast after flips in
    the leaky ablation: 2.25 GB peak, over the rule's 2000 MB); now a chunk at a time."""
    import marsseg.augment as module

    monkeypatch.setattr(module, "CHUNK_IMAGES", 2)  # 5 images: chunks of 2, 2 and 1
    largest = []
    to_uint8 = module._to_uint8
    monkeypatch.setattr(module, "_to_uint8", lambda v: largest.append(len(v)) or to_uint8(v))
    images = rng.integers(0, 256, (5, 64, 128), dtype=np.uint8)
    masks = rng.integers(0, 5, (5, 64, 128), dtype=np.uint8)

    def whole_stack(values):
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)

    draws = np.random.default_rng(4)
    delta = draws.uniform(-20, 20, 5) * (draws.random(5) < 1.0)
    factor = np.where(draws.random(5) < 0.6, draws.uniform(0.7, 1.3, 5), 1.0)
    chosen = draws.random(5) < 0.8
    noise = draws.normal(0.0, 5.0, images.shape).astype(np.float32) * chosen[:, None, None]
    brightened = whole_stack(images + delta[:, None, None])
    mean = brightened.mean(axis=(1, 2), keepdims=True)
    contrasted = whole_stack(mean + (brightened - mean) * factor[:, None, None])
    expected = whole_stack(contrasted + noise)

    steps = [
        {"name": "brightness"},
        {"name": "contrast", "max_factor": 0.3, "probability": 0.6},
        {"name": "gaussian_noise", "probability": 0.8},
    ]
    out_images, out_masks = augment(images, masks, steps, seed=4)
    np.testing.assert_array_equal(out_images, expected)
    assert out_masks is masks
    assert largest and max(largest) == 2
