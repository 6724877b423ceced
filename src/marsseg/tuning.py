"""Optuna hyper-parameter search over one variant (seed 001's tuning), an optional rule.

Each trial trains the variant's first member with the workflow's own training code
(`train_member`, so the same loss, callbacks and validation mIoU) for `epochs` epochs, with
learning rate, weight decay, focal gamma and the Big Rock class weight drawn from the configured
ranges, and scores it by its best validation mIoU. The TPE sampler is seeded per trial, so the
same config suggests the same trials, and a search stopped midway goes on where it stopped.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import yaml

from marsseg import BIG_ROCK
from marsseg.io import atomic_path

log = logging.getLogger(__name__)

# search-space key -> how it is drawn (log scale or not)
SEARCH_SPACE_KEYS = {
    "learning_rate": True,
    "weight_decay": True,
    "focal_gamma": False,
    "big_rock_weight": False,
}


def check_search_space(space: dict) -> None:
    """Each range must be [low, high] with low < high, and low > 0 where drawn on a log scale
    (ValueError naming the key and the fix): Optuna would refuse it only at the first trial."""
    for key, (low, high) in space.items():
        if low >= high or (SEARCH_SPACE_KEYS[key] and low <= 0):
            positive = " with low > 0 (drawn on a log scale)" if SEARCH_SPACE_KEYS[key] else ""
            raise ValueError(
                f"config: tuning.search_space.{key} is [{low}, {high}]. "
                f"Fix: give [low, high] with low < high{positive}."
            )


def trial_settings(suggest, settings: dict, space: dict) -> tuple[dict, dict]:
    """(member settings with the trial's values filled in, the values drawn).

    `suggest(name, low, high, log)` draws one value; `space` maps SEARCH_SPACE_KEYS to
    [low, high]. A key is left out where it does not apply (gamma of a non-focal loss, a
    Big Rock weight when the class weights are not a list of five).
    """
    settings = copy.deepcopy(settings)
    drawn = {}
    loss = settings["loss"]
    for key, (low, high) in space.items():
        if key == "focal_gamma" and loss["name"] != "focal":
            continue
        weights = loss.get("class_weights")
        if key == "big_rock_weight" and not (isinstance(weights, list) and len(weights) > BIG_ROCK):
            continue
        drawn[key] = suggest(key, float(low), float(high), SEARCH_SPACE_KEYS[key])
    if "learning_rate" in drawn:
        settings["training"]["learning_rate"] = drawn["learning_rate"]
    if "weight_decay" in drawn:
        settings["training"]["weight_decay"] = drawn["weight_decay"]
    if "focal_gamma" in drawn:
        loss["gamma"] = drawn["focal_gamma"]
    if "big_rock_weight" in drawn:
        loss["class_weights"][BIG_ROCK] = drawn["big_rock_weight"]
    return settings, drawn


def best_config(settings: dict, space: dict, values: dict) -> dict:
    """The searched `values` (search-space key -> value) as a variant's config entries: the
    whole loss with them filled in (focal_gamma is the loss's gamma, big_rock_weight the fifth
    of its class weights), and the searched training settings."""
    filled, drawn = trial_settings(lambda name, low, high, log_scale: values[name], settings, space)
    searched = [key for key in ("learning_rate", "weight_decay") if key in drawn]
    return {"loss": filled["loss"], "training": {key: filled["training"][key] for key in searched}}


def tune_variant(
    train_npz: str,
    val_npz: str,
    settings: dict,
    space: dict,
    n_trials: int,
    epochs: int,
    seed: int,
    trials_out: str,
    best_out: str,
    journal_dir: str | None = None,
) -> dict:
    """Run the search; write every trial (CSV) and the best values as a config snippet (YAML).
    With `journal_dir`, each finished trial is kept there, so that a search stopped midway (a
    killed or resubmitted job) goes on from its finished trials: the same search as an
    unbroken one, as trial k's sampler is seeded with seed + k."""
    import keras
    import optuna

    from marsseg.training import train_member_in, training_fingerprint

    settings = copy.deepcopy(settings)
    settings["training"]["epochs"] = epochs
    journal = Path(journal_dir) / "trials.jsonl" if journal_dir else None
    fingerprint = training_fingerprint(train_npz, val_npz, {**settings, "space": space}, seed)
    rows = _finished_trials(journal, fingerprint)[:n_trials]

    def objective(trial):
        def suggest(name, low, high, log_scale):
            return trial.suggest_float(name, low, high, log=log_scale)

        trial_config, drawn = trial_settings(suggest, settings, space)
        with tempfile.TemporaryDirectory(prefix="trial") as tmp:
            info = train_member_in(tmp, train_npz, val_npz, trial_config, seed)
        keras.backend.clear_session()
        score = info["best_val_miou"]
        rows.append({"trial": trial.number, **drawn, "best_val_miou": score})
        _append_line(journal, rows[-1])
        log.info("trial %d: %s -> best val_miou %.4f", trial.number, drawn, score)
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for row in rows:
        values = {key: row[key] for key in SEARCH_SPACE_KEYS if key in row}
        distributions = {
            key: optuna.distributions.FloatDistribution(*map(float, space[key]), log=log_scale)
            for key, log_scale in SEARCH_SPACE_KEYS.items()
            if key in values
        }
        study.add_trial(
            optuna.trial.create_trial(
                params=values, distributions=distributions, value=row["best_val_miou"]
            )
        )
    if rows:
        log.info("resuming the search after its %d finished trials", len(rows))
    if journal and not journal.exists():
        _append_line(journal, {"fingerprint": fingerprint})
    for number in range(len(rows), n_trials):
        study.sampler = optuna.samplers.TPESampler(seed=seed + number)
        study.optimize(objective, n_trials=1)

    with atomic_path(trials_out) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    best = {
        "best_val_miou": study.best_value,
        "trial": study.best_trial.number,
        "values": study.best_params,
        "config": best_config(settings, space, study.best_params),
    }
    with atomic_path(best_out) as tmp:
        Path(tmp).write_text(
            "# Best trial of the Optuna search; `config` holds its values as the variant's\n"
            "# settings: copy its `loss` and `training` into the variant in config.yaml.\n"
            + yaml.safe_dump(best, sort_keys=False)
        )
    log.info("best trial %d: %s (val_miou %.4f)", best["trial"], best["values"], study.best_value)
    if journal:
        shutil.rmtree(journal.parent, ignore_errors=True)
    return best


def _finished_trials(journal: Path | None, fingerprint: str) -> list[dict]:
    """The trials a stopped search of the same settings, data and space finished (their rows
    of trials.csv), from its journal: a first line with the fingerprint, then a line per trial
    (a line cut short by a kill is dropped). A journal of another search is removed."""
    if journal is None or not journal.exists():
        return []
    lines = []
    for text in journal.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            break
    if not lines or lines[0].get("fingerprint") != fingerprint:
        log.warning("%s belongs to another search: the search starts afresh", journal)
        shutil.rmtree(journal.parent)
        return []
    return lines[1:]


def _append_line(journal: Path | None, row: dict) -> None:
    if journal is None:
        return
    journal.parent.mkdir(parents=True, exist_ok=True)
    with open(journal, "a") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
