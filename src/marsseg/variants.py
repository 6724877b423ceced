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
        loss = copy.deepcopy(overrides.get("loss", settings["loss"]))
        _check_class_weights(variant, loss, num_classes_for(target))
        resolved.append(
            {
                "architecture": overrides.get("architecture", settings["architecture"]),
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
