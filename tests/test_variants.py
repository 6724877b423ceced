"""Reading a variant's members from the config: what is refused before any job starts."""

from __future__ import annotations

import pytest

from marsseg.variants import (
    big_rock_helper_of,
    check_big_rock_helper_use,
    helper_variants,
    num_classes_for,
    resolve_members,
)

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


def test_members_take_the_shared_then_the_variants_then_their_own_settings():
    config = {
        "training": {**TRAINING, "learning_rate": 0.001, "epochs": 10},
        "variants": {
            "v": {
                "architecture": "unet",
                "params": {"filters": [8]},
                "loss": {"name": "focal"},
                "training": {"learning_rate": 0.01},
                "members": [
                    {},
                    {
                        "architecture": "multipath",
                        "params": {"filters": [4]},
                        "loss": {"name": "dice"},
                        "training": {"epochs": 3},
                    },
                    {"seed_offset": 7},
                ],
            }
        },
    }
    members = resolve_members(config, "v")
    assert [m["training"] for m in members] == [
        {**TRAINING, "learning_rate": 0.01, "epochs": 10},
        {**TRAINING, "learning_rate": 0.01, "epochs": 3},
        {**TRAINING, "learning_rate": 0.01, "epochs": 10},
    ]
    assert [m["architecture"] for m in members] == ["unet", "multipath", "unet"]
    assert [m["params"] for m in members] == [{"filters": [8]}, {"filters": [4]}, {"filters": [8]}]
    assert [m["loss"] for m in members] == [{"name": "focal"}, {"name": "dice"}, {"name": "focal"}]
    assert [m["seed_offset"] for m in members] == [0, 1000, 7]
    assert [m["target"] for m in members] == ["classes"] * 3


BINARY_LOSS = {"name": "focal", "class_weights": [1, 10]}


@pytest.mark.parametrize(
    "variant",
    [
        {"architecture": "bigrock_binary", "loss": BINARY_LOSS},
        {"architecture": "bigrock_binary", "target": "classes", "loss": BINARY_LOSS},
        {
            "architecture": "unet",
            "loss": {"name": "focal"},
            "members": [{}, {"architecture": "bigrock_binary"}],
        },
    ],
)
def test_the_big_rock_architecture_without_its_target_is_refused_with_the_fix(variant):
    with pytest.raises(
        ValueError,
        match=r"variant 'v' has architecture bigrock_binary, the 2-class Big Rock helper, but "
        r"target classes \(5 classes\)\. Fix: add `target: big_rock` to variants\.v",
    ):
        resolve_members(config_with(variant), "v")


def test_a_big_rock_target_builds_any_architecture_with_2_classes():
    variant = {"architecture": "unet", "target": "big_rock", "loss": BINARY_LOSS}
    [member] = resolve_members(config_with(variant), "v")
    assert member["architecture"] == "unet" and num_classes_for(member["target"]) == 2


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        (
            {"name": "focal", "class_weights": [0, 1, 1, 1, 20], "background_weight": 1.0},
            r"sets background_weight in its focal loss, which acts only with class_weights: "
            r"inverse_frequency \(here class_weights is \[0, 1, 1, 1, 20\]\)\. Fix: remove "
            r"background_weight",
        ),
        (
            {"name": "dice", "max_weight": 5.0},
            r"sets max_weight in its dice loss, .*\(here class_weights is not set\)\. Fix",
        ),
        (
            {
                "name": "combined",
                "class_weights": "inverse_frequency",
                "components": [{"name": "dice", "background_weight": 0.0}],
            },
            r"sets background_weight in its dice loss",
        ),
        (
            {"name": "sparse_categorical_crossentropy", "gamma": 2.0},
            r"sets gamma in its sparse_categorical_crossentropy loss, but gamma acts only in a "
            r"focal loss\. Fix: remove gamma, or use name: focal\.",
        ),
        (
            {"name": "combined", "components": [{"name": "dice", "gamma": 1.0}]},
            r"sets gamma in its dice loss",
        ),
        (
            {
                "name": "combined",
                "gamma": 1.0,
                "components": [{"name": "focal", "gamma": 2.0}, {"name": "dice"}],
            },
            r"sets gamma in its combined loss",
        ),
    ],
)
def test_loss_keys_that_act_on_nothing_are_refused_with_the_fix(loss, message):
    with pytest.raises(ValueError, match=rf"config: variant 'v' {message}"):
        resolve_members(config_with({"architecture": "unet", "loss": loss}), "v")


@pytest.mark.parametrize(
    "loss",
    [
        {"name": "focal", "gamma": 0.5, "class_weights": "inverse_frequency", "max_weight": 9.0},
        {"name": "dice", "class_weights": "inverse_frequency", "background_weight": 0.0},
        {"name": "combined", "gamma": 1.0, "components": [{"name": "focal"}, {"name": "dice"}]},
    ],
)
def test_loss_keys_that_act_pass(loss):
    [member] = resolve_members(config_with({"architecture": "unet", "loss": loss}), "v")
    assert member["loss"] == loss


def helper_config(**changes) -> dict:
    unet = {"architecture": "unet", "loss": {"name": "focal"}}
    bigrock = {"architecture": "bigrock_binary", "target": "big_rock", "loss": BINARY_LOSS}
    config = {"variants": {"unet": unet, "bigrock": bigrock}, "run_variants": None}
    return {**config, "ensembles": {}, **changes}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"ensembles": {"mix": ["unet", "bigrock"]}},
            r"config: ensemble 'mix' lists 'bigrock', a Big Rock helper \(target: big_rock\), "
            r"which predicts 2 classes, not 5\. Fix: .*`big_rock_helper: \{variant: bigrock\}`",
        ),
        (
            {"ensembles": {}, "variants": {"unet": {"big_rock_helper": {"variant": "unet"}}}},
            r"config: variant 'unet' uses big_rock_helper 'unet', which is not a variant with "
            r"`target: big_rock`\. Fix: .*architecture: bigrock_binary and target: big_rock\.",
        ),
        (
            {"run_variants": ["unet", "bigrock"]},
            r"config: run_variants lists 'bigrock', a Big Rock helper \(target: big_rock\), .*"
            r"Fix: remove it from run_variants and add `big_rock_helper: \{variant: bigrock\}`",
        ),
    ],
)
def test_a_big_rock_helper_used_as_a_scored_variant_is_refused_with_the_fix(changes, message):
    with pytest.raises(ValueError, match=message):
        check_big_rock_helper_use(helper_config(**changes))


def test_a_big_rock_helper_used_as_a_helper_passes():
    check_big_rock_helper_use(helper_config(run_variants=["unet"], ensembles={"mix": ["unet"]}))


def config_with_helpers(unet_helper, multipath_helper) -> dict:
    """helper_config with a second helper, and an ensemble of unet and multipath."""
    config = helper_config(ensembles={"mix": ["unet", "multipath"]})
    config["variants"]["bigrock_strict"] = config["variants"]["bigrock"]
    config["variants"]["multipath"] = {"architecture": "multipath", "loss": {"name": "focal"}}
    for name, helper in [("unet", unet_helper), ("multipath", multipath_helper)]:
        if helper:
            config["variants"][name]["big_rock_helper"] = helper
    return config


@pytest.mark.parametrize(
    ("unet_helper", "multipath_helper", "expected"),
    [
        (None, None, {}),
        ({"variant": "bigrock"}, None, {"variant": "bigrock", "threshold": 0.5}),
        (
            {"variant": "bigrock", "threshold": 0.7},
            {"variant": "bigrock", "threshold": 0.7},
            {"variant": "bigrock", "threshold": 0.7},
        ),
    ],
)
def test_an_ensemble_applies_the_big_rock_helper_its_variants_name(
    unet_helper, multipath_helper, expected
):
    config = config_with_helpers(unet_helper, multipath_helper)
    check_big_rock_helper_use(config)
    assert big_rock_helper_of(config, "mix") == expected
    assert big_rock_helper_of(config, "multipath") == (expected if multipath_helper else {})
    assert helper_variants(config) == ["bigrock", "bigrock_strict"]


@pytest.mark.parametrize(
    ("multipath_helper", "named"),
    [
        ({"variant": "bigrock_strict"}, r"bigrock at p >= 0\.5, bigrock_strict at p >= 0\.5"),
        ({"variant": "bigrock", "threshold": 0.8}, r"bigrock at p >= 0\.5, bigrock at p >= 0\.8"),
    ],
)
def test_an_ensemble_of_variants_with_different_big_rock_helpers_is_refused(
    multipath_helper, named
):
    config = config_with_helpers({"variant": "bigrock"}, multipath_helper)
    with pytest.raises(ValueError, match=rf"config: ensemble 'mix' .*\({named}\).* Fix: "):
        check_big_rock_helper_use(config)
