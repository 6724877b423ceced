"""The optional Optuna search: how a trial's values reach the settings, and a real tiny search."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

import marsseg.training
from marsseg.io import save_arrays
from marsseg.tuning import (
    _finished_trials,
    best_config,
    check_search_space,
    trial_settings,
    tune_variant,
)

SETTINGS = {
    "architecture": "unet",
    "params": {"filters": [4, 8], "dilation_rates": [1, 2]},
    "loss": {"name": "focal", "gamma": 2.0, "class_weights": [0.0, 1.0, 1.0, 1.0, 20.0]},
    "training": {
        "epochs": 200,
        "batch_size": 8,
        "learning_rate": 0.001,
        "weight_decay": 0.001,
        "reduce_lr_patience": 10,
        "early_stopping_patience": 10,
    },
    "target": "classes",
}
SPACE = {
    "learning_rate": [1e-4, 1e-2],
    "weight_decay": [1e-5, 1e-2],
    "focal_gamma": [0.0, 3.0],
    "big_rock_weight": [1.0, 30.0],
}


def test_trial_values_land_in_the_settings_and_the_original_is_untouched():
    calls = []

    def suggest(name, low, high, log_scale):
        calls.append((name, low, high, log_scale))
        return high

    settings, drawn = trial_settings(suggest, SETTINGS, SPACE)
    assert calls == [
        ("learning_rate", 1e-4, 1e-2, True),
        ("weight_decay", 1e-5, 1e-2, True),
        ("focal_gamma", 0.0, 3.0, False),
        ("big_rock_weight", 1.0, 30.0, False),
    ]
    assert drawn == {
        "learning_rate": 1e-2,
        "weight_decay": 1e-2,
        "focal_gamma": 3.0,
        "big_rock_weight": 30.0,
    }
    assert settings["training"]["learning_rate"] == 1e-2
    assert settings["training"]["weight_decay"] == 1e-2
    assert settings["loss"] == {
        "name": "focal",
        "gamma": 3.0,
        "class_weights": [0.0, 1.0, 1.0, 1.0, 30.0],
    }
    assert SETTINGS["loss"]["class_weights"][4] == 20.0 and SETTINGS["loss"]["gamma"] == 2.0


@pytest.mark.parametrize(
    ("loss", "searched_in_the_loss"),
    [
        ({"name": "dice", "class_weights": "inverse_frequency"}, []),
        (
            {"name": "sparse_categorical_crossentropy", "class_weights": [0, 1, 1, 1, 5]},
            ["big_rock_weight"],
        ),
        ({"name": "focal", "class_weights": "inverse_frequency"}, ["focal_gamma"]),
        ({"name": "focal", "class_weights": [1, 5]}, ["focal_gamma"]),  # the binary helper's
    ],
)
def test_values_that_do_not_apply_are_not_searched(loss, searched_in_the_loss):
    settings = {**SETTINGS, "loss": loss}
    _, drawn = trial_settings(lambda name, low, high, log_scale: low, settings, SPACE)
    assert sorted(drawn) == sorted(["learning_rate", "weight_decay", *searched_in_the_loss])


def test_the_best_values_are_written_as_the_variants_config_entries():
    values = {"learning_rate": 0.004, "weight_decay": 0.0002, "focal_gamma": 0.5}
    values["big_rock_weight"] = 12.0
    assert best_config(SETTINGS, SPACE, values) == {
        "loss": {"name": "focal", "gamma": 0.5, "class_weights": [0.0, 1.0, 1.0, 1.0, 12.0]},
        "training": {"learning_rate": 0.004, "weight_decay": 0.0002},
    }
    dice = {**SETTINGS, "loss": {"name": "dice", "class_weights": "inverse_frequency"}}
    space = {"weight_decay": SPACE["weight_decay"], "focal_gamma": SPACE["focal_gamma"]}
    assert best_config(dice, space, {"weight_decay": 0.0002}) == {
        "loss": {"name": "dice", "class_weights": "inverse_frequency"},
        "training": {"weight_decay": 0.0002},
    }


def write_tiny_data(folder) -> None:
    rng = np.random.default_rng(0)
    for name, n in (("train", 32), ("val", 8)):
        masks = rng.integers(0, 5, (n, 64, 128), dtype=np.uint8)
        save_arrays(folder / f"{name}.npz", images=(masks * 50).astype(np.uint8), masks=masks)


def tiny_search(data, out, n_trials=2, journal_dir=None) -> dict:
    """A search on the tiny data in `data`, writing trials.csv and best.yaml to `out`."""
    return tune_variant(
        train_npz=str(data / "train.npz"),
        val_npz=str(data / "val.npz"),
        settings=SETTINGS,
        space=SPACE,
        n_trials=n_trials,
        epochs=1,
        seed=5,
        trials_out=str(out / "trials.csv"),
        best_out=str(out / "best.yaml"),
        journal_dir=journal_dir,
    )


def read_trials(folder) -> list[dict]:
    with open(folder / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_tiny_search_writes_every_trial_and_the_best(tmp_path):
    write_tiny_data(tmp_path)
    best = tiny_search(tmp_path, tmp_path)
    trials = read_trials(tmp_path)
    assert [int(t["trial"]) for t in trials] == [0, 1]
    for trial in trials:
        assert 1e-4 <= float(trial["learning_rate"]) <= 1e-2
        assert 0.0 <= float(trial["focal_gamma"]) <= 3.0
        assert 0.0 <= float(trial["best_val_miou"]) <= 1.0
    scores = [float(t["best_val_miou"]) for t in trials]
    assert best["best_val_miou"] == pytest.approx(max(scores))
    written = yaml.safe_load((tmp_path / "best.yaml").read_text())
    best_row = trials[written["trial"]]
    assert float(best_row["best_val_miou"]) == pytest.approx(max(scores))
    assert written["values"] == pytest.approx({k: float(best_row[k]) for k in SPACE})
    assert written["config"]["loss"]["gamma"] == pytest.approx(float(best_row["focal_gamma"]))
    big_rock_weight = written["config"]["loss"]["class_weights"][4]
    assert big_rock_weight == pytest.approx(float(best_row["big_rock_weight"]))
    learning_rate = written["config"]["training"]["learning_rate"]
    assert learning_rate == pytest.approx(float(best_row["learning_rate"]))


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"learning_rate": [1e-2, 1e-4]}, r"learning_rate is \[0.01, 0.0001\]. Fix: .*low < high"),
        (
            {"weight_decay": [0, 1e-2]},
            r"weight_decay is \[0, 0.01\]. Fix: .*low > 0 \(drawn on a log",
        ),
        ({"focal_gamma": [2.0, 2.0]}, r"focal_gamma is \[2.0, 2.0\]. Fix: .*low < high\.$"),
    ],
)
def test_a_search_range_optuna_would_refuse_is_refused_with_the_fix(space, message):
    with pytest.raises(ValueError, match=message):
        check_search_space(space)
    check_search_space({"focal_gamma": [0.0, 3.0], "learning_rate": [1e-4, 1e-2]})  # fine


@pytest.mark.slow
def test_a_search_stopped_midway_goes_on_as_an_unbroken_one(tmp_path, monkeypatch):
    write_tiny_data(tmp_path)
    unbroken, stopped = tmp_path / "unbroken", tmp_path / "stopped"
    unbroken.mkdir(), stopped.mkdir()
    tiny_search(tmp_path, unbroken, n_trials=3)

    journal_dir = tmp_path / "journal"
    trainings = []
    train_member_in = marsseg.training.train_member_in

    def killed_at_the_third_trial(*args, **kwargs):
        trainings.append(args)
        if len(trainings) == 3:
            raise KeyboardInterrupt
        return train_member_in(*args, **kwargs)

    monkeypatch.setattr(marsseg.training, "train_member_in", killed_at_the_third_trial)
    with pytest.raises(KeyboardInterrupt):
        tiny_search(tmp_path, stopped, n_trials=3, journal_dir=journal_dir)
    assert not (stopped / "trials.csv").exists()
    assert len((journal_dir / "trials.jsonl").read_text().splitlines()) == 1 + 2

    trainings.clear()
    tiny_search(tmp_path, stopped, n_trials=3, journal_dir=journal_dir)
    assert len(trainings) == 1  # the third trial only
    assert not journal_dir.exists()
    expected, resumed = read_trials(unbroken), read_trials(stopped)
    assert [row["trial"] for row in resumed] == ["0", "1", "2"]
    for row, again in zip(expected, resumed, strict=True):
        assert {k: row[k] for k in SPACE} == {k: again[k] for k in SPACE}  # the same draws
        assert float(again["best_val_miou"]) == pytest.approx(float(row["best_val_miou"]))
    assert (
        yaml.safe_load((stopped / "best.yaml").read_text())["trial"]
        == (yaml.safe_load((unbroken / "best.yaml").read_text())["trial"])
    )


def test_a_journal_of_another_search_or_a_line_cut_short_is_not_resumed(tmp_path, caplog):
    journal = tmp_path / "journal" / "trials.jsonl"
    journal.parent.mkdir()
    row = {"trial": 0, "learning_rate": 0.001, "best_val_miou": 0.3}
    journal.write_text(json.dumps({"fingerprint": "abc"}) + "\n" + json.dumps(row) + '\n{"tri')
    assert _finished_trials(journal, "abc") == [row]
    assert _finished_trials(journal, "other") == []
    assert "belongs to another search: the search starts afresh" in caplog.text
    assert not journal.parent.exists()
