"""Reading a variant's members from the config: what is refused before any job starts."""

from __future__ import annotations

import pytest

from marsseg.variants import resolve_members

TRAINING = {"batch_size": 32, "micro_batch_size": "auto"}


def config_with(variant: dict) -> dict:
    return {"training": TRAINING, "variants": {"v": variant}}


@pytest.mark.parametrize(
    ("variant", "count", "classes"),
    [
        ({"architecture": "unet", "loss": {"name": "focal", "class_weights": [0, 1, 1]}}, 3, 5),
        (
            {
                "architecture": "unet",
                "loss": {
                    "name": "combined",
                    "components": [{"name": "dice", "class_weights": [1]}],
                },
            },
            1,
            5,
        ),
        (
            {
                "architecture": "bigrock_binary",
                "target": "big_rock",
                "loss": {"name": "focal", "class_weights": [0, 1, 1, 1, 20]},
            },
            5,
            2,
        ),
        (
            {
                "architecture": "unet",
                "loss": {"name": "focal"},
                "members": [{}, {"loss": {"name": "focal", "class_weights": [1, 1, 1, 1]}}],
            },
            4,
            5,
        ),
    ],
)
def test_class_weights_of_the_wrong_length_are_refused_with_the_fix(variant, count, classes):
    with pytest.raises(
        ValueError, match=rf"variant 'v' has {count} class_weights .* {classes} classes\. Fix: give"
    ):
        resolve_members(config_with(variant), "v")


def test_class_weights_of_the_right_length_or_computed_pass():
    five = {"architecture": "unet", "loss": {"name": "focal", "class_weights": [0, 1, 1, 1, 20]}}
    computed = {
        "architecture": "unet",
        "loss": {"name": "focal", "class_weights": "inverse_frequency"},
    }
    binary = {
        "architecture": "bigrock_binary",
        "target": "big_rock",
        "loss": {"name": "focal", "class_weights": [1, 10]},
    }
    for variant in (five, computed, binary):
        [member] = resolve_members(config_with(variant), "v")
        assert member["loss"] == variant["loss"]
