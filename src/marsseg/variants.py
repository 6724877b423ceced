"""A variant's separately trained members, with their settings resolved from the config (keras-free:
the Snakefile and the benchmark both read variants through this)."""

from __future__ import annotations

import copy


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
        resolved.append(
            {
                "architecture": overrides.get("architecture", settings["architecture"]),
                "params": copy.deepcopy(overrides.get("params", settings.get("params", {}))),
                "loss": copy.deepcopy(overrides.get("loss", settings["loss"])),
                "training": training,
                "seed_offset": overrides.get("seed_offset", 1000 * index),
                "target": settings.get("target", "classes"),
            }
        )
    return resolved
