"""A variant's separately trained members, with their settings resolved from the config (keras-free:
the Snakefile and the benchmark both read variants through this)."""

from __future__ import annotations

import copy

from marsseg import NUM_CLASSES


def resolve_members(config: dict, variant: str) -> list[dict]:
    """The members of `variant` (one unless it lists `members:`), each with its architecture,
    params, loss, training settings (shared < variant < member), seed offset and target."""
    settings = config["variants"][variant]
    resolved = []
    for index, overrides in enumerate(settings.get("members", [{}])):
        training = {**config["training"], **settings.get("training", {})}
        training.update(overrides.get("training", {}))
        micro, batch = training.get("micro_batch_size"), training["batch_size"]
        if isinstance(micro, int) and micro < batch and batch % micro:
            raise ValueError(
                f"config: variant '{variant}' trains batches of {batch} in passes of "
                f"micro_batch_size {micro}, which does not divide {batch}. Fix: set "
                "training.micro_batch_size to a divisor of batch_size, or to auto or null."
            )
        target = settings.get("target", "classes")
        architecture = overrides.get("architecture", settings["architecture"])
        _check_target(variant, architecture, target)
        loss = copy.deepcopy(overrides.get("loss", settings["loss"]))
        _check_class_weights(variant, loss, num_classes_for(target))
        _check_loss_keys(variant, loss)
        resolved.append(
            {
                "architecture": architecture,
                "params": copy.deepcopy(overrides.get("params", settings.get("params", {}))),
                "loss": loss,
                "training": training,
                "seed_offset": overrides.get("seed_offset", 1000 * index),
                "target": target,
            }
        )
    return resolved


def num_classes_for(target: str) -> int:
    """Classes a model predicts: the five labels, or Big Rock and the rest (`target: big_rock`)."""
    return 2 if target == "big_rock" else NUM_CLASSES


def _check_class_weights(variant: str, loss: dict, num_classes: int) -> None:
    """A list of class weights needs one weight per class the variant predicts: refused when the
    config is read, not when its training starts."""
    for part in [loss, *loss.get("components", [])]:
        weights = part.get("class_weights")
        if isinstance(weights, list) and len(weights) != num_classes:
            classes = (
                "[not big rock, big rock]"
                if num_classes == 2
                else "[bg, soil, bedrock, sand, big rock]"
            )
            raise ValueError(
                f"config: variant '{variant}' has {len(weights)} class_weights {weights} for a "
                f"model of {num_classes} classes. Fix: give {num_classes} weights, {classes}, "
                "or class_weights: inverse_frequency."
            )


def _check_target(variant: str, architecture: str, target: str) -> None:
    """bigrock_binary builds the 2-class Big Rock helper only: refused for a 5-class target."""
    if architecture == "bigrock_binary" and target != "big_rock":
        raise ValueError(
            f"config: variant '{variant}' has architecture bigrock_binary, the 2-class Big Rock "
            f"helper, but target {target} (5 classes). Fix: add `target: big_rock` to "
            f"variants.{variant} and name it in another variant's `big_rock_helper:`, or use "
            "another architecture (unet for 5 classes)."
        )


# Snakemake merges a --configfile overlay into config.yaml key by key, so an overlay that changes
# a variant's loss keeps the keys of config.yaml's loss that it does not set.
_OVERLAY_HINT = (
    " (An overlay over config.yaml keeps that variant's other loss keys: define the changed "
    "variant under a new name there.)"
)


def _check_loss_keys(variant: str, loss: dict) -> None:
    """Loss keys that would act on nothing are refused: background_weight and max_weight shape
    the computed weights of class_weights: inverse_frequency only, gamma a focal loss only."""
    for part in [loss, *loss.get("components", [])]:
        for key in ("background_weight", "max_weight"):
            if key in part and part.get("class_weights") != "inverse_frequency":
                raise ValueError(
                    f"config: variant '{variant}' sets {key} in its {part['name']} loss, which "
                    "acts only with class_weights: inverse_frequency (here class_weights is "
                    f"{part.get('class_weights', 'not set')}). Fix: remove {key} and write the "
                    "weights you want into class_weights, or set class_weights: inverse_frequency."
                    + _OVERLAY_HINT
                )
        if "gamma" in part and not _gamma_acts(part):
            raise ValueError(
                f"config: variant '{variant}' sets gamma in its {part['name']} loss, but gamma "
                "acts only in a focal loss. Fix: remove gamma, or use name: focal." + _OVERLAY_HINT
            )


def _gamma_acts(part: dict) -> bool:
    """A focal loss uses its gamma; a combined loss passes it to its focal components that have
    no gamma of their own."""
    if part["name"] == "focal":
        return True
    return any(c["name"] == "focal" and "gamma" not in c for c in part.get("components", []))


def helper_variants(config: dict) -> list[str]:
    """The Big Rock helpers (`target: big_rock`): trained for the variants that name them in
    `big_rock_helper:`, never scored on their own."""
    return [name for name, v in config["variants"].items() if v.get("target") == "big_rock"]


def big_rock_helper_of(config: dict, name: str) -> dict:
    """The Big Rock helper of a predicted name, {variant, threshold}, or {} if it has none. A
    variant has its own; an ensemble applies the one its parts name (it may not have two)."""
    helpers = _helpers_of(config, config["ensembles"].get(name, [name]))
    return helpers[0] if helpers else {}


def _helpers_of(config: dict, variants: list[str]) -> list[dict]:
    helpers = []
    for variant in variants:
        helper = config["variants"].get(variant, {}).get("big_rock_helper")
        if helper:
            helper = {"variant": helper["variant"], "threshold": helper.get("threshold", 0.5)}
            if helper not in helpers:
                helpers.append(helper)
    return helpers


def check_big_rock_helper_use(config: dict) -> None:
    """A Big Rock helper (`target: big_rock`) predicts 2 classes, and serves the variants that
    name it in `big_rock_helper:`: only a helper may be named there, and a helper is refused in
    an ensemble and in run_variants. An ensemble applies its parts' helper, so its parts may not
    name two different ones."""
    helpers = helper_variants(config)
    for name, variant in config["variants"].items():
        helper = variant.get("big_rock_helper", {}).get("variant")
        if helper is not None and helper not in helpers:
            raise ValueError(
                f"config: variant '{name}' uses big_rock_helper '{helper}', which is not a variant "
                "with `target: big_rock`. Fix: define it under `variants:` with "
                "architecture: bigrock_binary and target: big_rock."
            )
    for name in config["run_variants"] or []:
        if name in helpers:
            raise ValueError(
                f"config: run_variants lists '{name}', a Big Rock helper (target: big_rock), "
                "which is not scored on its own: it is trained for the variants that name it "
                "in `big_rock_helper:`. Fix: remove it from run_variants and add "
                f"`big_rock_helper: {{variant: {name}}}` to a variant that run_variants lists."
            )
    for ensemble, parts in config["ensembles"].items():
        for name in parts:
            if name in helpers:
                raise ValueError(
                    f"config: ensemble '{ensemble}' lists '{name}', a Big Rock helper (target: "
                    f"big_rock), which predicts 2 classes, not {NUM_CLASSES}. Fix: remove it from "
                    f"the ensemble and use it as `big_rock_helper: {{variant: {name}}}` of a "
                    "variant instead."
                )
        different = _helpers_of(config, parts)
        if len(different) > 1:
            named = ", ".join(f"{h['variant']} at p >= {h['threshold']}" for h in different)
            raise ValueError(
                f"config: ensemble '{ensemble}' averages variants with different Big Rock "
                f"helpers ({named}), and an ensemble applies one. Fix: give its variants the "
                "same `big_rock_helper:` (or none), or ensemble other variants."
            )
