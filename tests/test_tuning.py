"""The optional Optuna search: how a trial's values reach the settings, and a real tiny search."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml

from marsseg.io import save_arrays
from marsseg.tuning import best_config, check_search_space, trial_settings, tune_variant

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


def test_values_that_do_not_apply_are_not_searched():
    settings = {**SETTINGS, "loss": {"name": "dice", "class_weights": "inverse_frequency"}}
    _, drawn = trial_settings(lambda name, low, high, log_scale: low, settings, SPACE)
    assert sorted(drawn) == ["learning_rate", "weight_decay"]


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


@pytest.mark.slow
def test_a_tiny_search_writes_every_trial_and_the_best(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in (("train", 32), ("val", 8)):
        masks = rng.integers(0, 5, (n, 64, 128), dtype=np.uint8)
        save_arrays(tmp_path / f"{name}.npz", images=(masks * 50).astype(np.uint8), masks=masks)
    best = tune_variant(
        train_npz=str(tmp_path / "train.npz"),
        val_npz=str(tmp_path / "val.npz"),
        settings=SETTINGS,
        space=SPACE,
        n_trials=2,
        epochs=1,
        seed=5,
        trials_out=str(tmp_path / "trials.csv"),
        best_out=str(tmp_path / "best.yaml"),
    )
    with open(tmp_path / "trials.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
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
