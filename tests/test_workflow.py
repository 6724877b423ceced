"""The real workflow, end to end, on a tiny synthetic config; and its answers to bad input."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_runner import TINY_CONFIG, snakemake

from marsseg.submission import read_submission

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    snakemake(workdir, "--cores", "2", "--resources", "gpu=1")
    return workdir


def test_comparison_table_rows_and_values(tiny_run):
    table = pd.read_csv(tiny_run / "results" / "comparison.csv")
    assert sorted(zip(table.variant, table.postprocessing, strict=True)) == [
        ("unet", "nearest_label"),
        ("unet", "no_background"),
        ("unet", "none"),
    ]
    for column in ["miou_mean", "iou_soil_mean", "iou_bedrock_mean", "iou_sand_mean"]:
        assert table[column].between(0, 1).all(), column
    big_rock = table["iou_big_rock_mean"].dropna()
    assert big_rock.between(0, 1).all()
    assert (table.n_seeds == 1).all()
    assert (table.parameters > 0).all() and (table.epochs_mean == 2).all()
    assert table.miou_mean.is_monotonic_decreasing
    markdown = (tiny_run / "results" / "comparison.md").read_text()
    assert markdown.count("| unet |") == 3


def test_submission_is_in_course_format_and_scored(tiny_run):
    masks = read_submission(tiny_run / "results" / "submission.csv")
    assert masks.shape == (12, 64, 128) and masks.max() <= 4
    score = yaml.safe_load((tiny_run / "results" / "submission_score.json").read_text())
    assert 0 <= score["mean_iou"] <= 1 and not math.isnan(score["mean_iou"])


def test_every_rule_wrote_its_log_and_outliers_were_removed(tiny_run):
    logs = sorted(
        p.relative_to(tiny_run / "logs").as_posix() for p in (tiny_run / "logs").rglob("*.log")
    )
    for expected in [
        "synthesize.log",
        "load_raw.log",
        "filter_outliers.log",
        "split.log",
        "augment.log",
        "train/unet/seed1/member0.log",
        "predict/unet/seed1.log",
        "score/unet/seed1/none.log",
        "comparison_table.log",
        "submission.log",
    ]:
        assert expected in logs
    assert "val_miou" in (tiny_run / "logs/train/unet/seed1/member0.log").read_text()
    outliers = yaml.safe_load((tiny_run / "results/data/outliers.json").read_text())
    assert outliers["n_dropped"] == 5 and outliers["n_kept"] == 43


def test_data_steps_are_byte_identical_across_runs(tiny_run, tmp_path):
    targets = [
        "results/data/filtered.npz",
        "results/data/train.npz",
        "results/data/val.npz",
        "results/data/train_augmented.npz",
    ]
    snakemake(tmp_path, "--cores", "2", *targets)
    for target in targets:
        assert (tmp_path / target).read_bytes() == (tiny_run / target).read_bytes(), target


def _tiny_config(**changes):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    for key, value in changes.items():
        config[key] = value
    return config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outlier": {"max_group_size": 3}}, "Additional properties are not allowed.*outlier"),
        ({"seeds": "one"}, "'one' is not of type 'array'"),
        (
            {"variants": {"unet": {"architecture": "unte", "loss": {"name": "focal"}}}},
            "architecture 'unte'.*Fix: use one of",
        ),
        ({"postprocessing": {"methods": ["nearest"]}}, "'nearest' is not one of"),
        (
            {"raw_data": "/nonexistent/mars_for_students.npz"},
            "Missing input files|/nonexistent/mars_for_students.npz",
        ),
    ],
)
def test_config_mistakes_stop_the_run_with_a_clear_message(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_tiny_config(**change)))
    result = snakemake(tmp_path / "run", "-n", "--cores", "1", config=path, check=False)
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr, re.S), result.stderr[-3000:]


def test_bad_raw_data_stops_load_raw_and_leaves_no_output(tmp_path):
    raw = tmp_path / "raw.npz"
    training = np.zeros((6, 2, 64, 128))
    training[:, 1] = 2
    training[3, 1, 0, 0] = 9
    np.savez(raw, training_set=training, test_set=np.zeros((2, 64, 128)))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_tiny_config(raw_data=str(raw))))
    result = snakemake(
        tmp_path / "run", "--cores", "1", "results/data/labelled.npz", config=path, check=False
    )
    assert result.returncode != 0
    assert "outside 0-4" in result.stderr and "Fix: map your labels to 0-4" in result.stderr
    leftovers = list((tmp_path / "run" / "results").rglob("*.npz"))
    assert leftovers == []
