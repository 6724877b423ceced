"""The real workflow, end to end, on a tiny synthetic config; and its answers to bad input."""

from __future__ import annotations

import base64
import json
import math
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_runner import REPO, TINY_CONFIG, snakemake

from marsseg.io import load_arrays
from marsseg.submission import read_submission
from marsseg.synthetic import generate_course_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    snakemake(workdir, "--cores", "2", "--resources", "gpu=1")
    return workdir


def test_comparison_table_rows_and_values(tiny_run):
    table = pd.read_csv(tiny_run / "results" / "comparison.csv")
    assert (table.tta == "off").all()  # no TTA in the tiny config
    assert sorted(zip(table.variant, table.postprocessing, strict=True)) == [
        ("unet", "nearest_label"),
        ("unet", "no_background"),
        ("unet", "none"),
    ]
    for column in ["miou_mean", "iou_soil_mean", "iou_bedrock_mean", "iou_sand_mean"]:
        assert table[column].between(0, 1).all(), column
    big_rock = table["iou_big_rock_mean"].dropna()
    assert big_rock.between(0, 1).all()
    assert (table.n_seeds == 2).all() and (table.epochs_mean == 2).all()
    assert (table.parameters > 0).all() and (table.miou_std >= 0).all()
    for row in table.itertuples():  # mean and std over the two seeds' score files
        per_seed = [
            json.loads(
                (
                    tiny_run / f"results/scores/unet/seed{s}/tta_off/{row.postprocessing}.json"
                ).read_text()
            )["mean_iou"]
            for s in (1, 2)
        ]
        assert row.miou_mean == pytest.approx(np.mean(per_seed), abs=1e-6)
        assert row.miou_std == pytest.approx(np.std(per_seed, ddof=1), abs=1e-6)
        epoch_seconds = [  # training time: every epoch of the history, training + validation
            pd.read_csv(tiny_run / f"results/training/unet/seed{s}/member0_history.csv")[
                "epoch_seconds"
            ].sum()
            for s in (1, 2)
        ]
        assert row.train_seconds_mean == pytest.approx(np.mean(epoch_seconds), abs=0.01)
    assert table.miou_mean.is_monotonic_decreasing
    markdown = (tiny_run / "results" / "comparison.md").read_text()
    assert markdown.count("| unet |") == 3 and markdown.count("(n=2)") == 3


def test_submission_is_in_course_format_and_scored(tiny_run):
    masks = read_submission(tiny_run / "results" / "submission.csv")
    assert masks.shape == (12, 64, 128) and masks.max() <= 4
    # the hidden test masks are the synthetic dataset's, for the config's settings
    hidden = load_arrays(tiny_run / "results/data/synthetic/test_masks.npz")["masks"]
    settings = yaml.safe_load((tiny_run / "config.yaml").read_text())["synthetic"]
    np.testing.assert_array_equal(hidden, generate_course_dataset(**settings)[2])
    # the score is the course metric of the submission against them, recomputed here by hand:
    # IoU of each class 1-4 over the labelled pixels, the mean over classes present in either
    labelled = hidden > 0
    expected = {}
    for c in (1, 2, 3, 4):
        true, predicted = hidden == c, (masks == c) & labelled
        union = (true | predicted).sum()
        expected[str(c)] = (true & predicted).sum() / union if union else math.nan
    score = json.loads((tiny_run / "results" / "submission_score.json").read_text())
    assert score["per_class_iou"] == pytest.approx(expected, abs=1e-12, nan_ok=True)
    present = [v for v in expected.values() if not math.isnan(v)]
    assert score["mean_iou"] == pytest.approx(np.mean(present), abs=1e-12)


def test_each_variant_submits_its_best_method_and_the_best_row_is_submitted(tiny_run):
    table = pd.read_csv(tiny_run / "results" / "comparison.csv")
    best = table.postprocessing[table.variant == "unet"].iloc[0]
    postprocessed = np.load(tiny_run / f"results/postprocessed/unet/seed1/tta_off/{best}.npz")
    postprocessed = postprocessed["test"]
    variant_csv = tiny_run / "results" / "submissions" / "unet.csv"
    np.testing.assert_array_equal(read_submission(variant_csv), postprocessed)
    # one variant here, so the best row's submission is that variant's
    assert (tiny_run / "results" / "submission.csv").read_bytes() == variant_csv.read_bytes()


def _embedded_files(html: str) -> list[tuple[str, bytes]]:
    """(file name, content) of every file the report embeds as a base64 data URI."""
    found = re.findall(r"data:[\w/+.-]+;charset=[\w-]+;filename=([^;]+);base64,([\w+/=]+)", html)
    return [(name, base64.b64decode(data)) for name, data in found]


def test_report_holds_the_table_and_every_figure(tiny_run):
    snakemake(tiny_run, "--report", "results/report.html", config=None)
    html = (tiny_run / "results" / "report.html").read_text()
    embedded = _embedded_files(html)
    by_name = dict(embedded)
    top = pd.read_csv(tiny_run / "results" / "comparison.csv").iloc[0]
    row = f"<td>unet</td><td>{top.features}</td><td>off</td><td>{top.postprocessing}</td>"
    row += f"<td>{top.miou_mean:.3f} ± {top.miou_std:.3f} (n=2)</td>"
    table = by_name["comparison.html"].decode()
    assert row in table and table.count("<td>unet</td>") == 3
    assert by_name["comparison.csv"] == (tiny_run / "results" / "comparison.csv").read_bytes()
    figures = sorted((tiny_run / "results" / "figures").rglob("*.png"))
    assert [f.relative_to(tiny_run / "results" / "figures").as_posix() for f in figures] == [
        "class_distribution.png",
        "confusion/unet.png",
        "outliers.png",
        "predictions/unet.png",
        "training_curves/unet.png",
    ]
    contents = [data for _, data in embedded]  # three of the figures are named unet.png
    for figure in figures:
        assert figure.read_bytes() in contents, figure
    for category in ["Comparison", "Predictions", "Training curves", "Confusion matrices", "Data"]:
        assert f'"{category}"' in html
    assert html.count('"labels": {"variant": "unet"}') == 3


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
        "score/unet/seed1/tta_off/none.log",
        "comparison_table.log",
        "submission.log",
        "variant_submission/unet.log",
        "figure_predictions/unet.log",
        "figure_training_curves/unet.log",
        "figure_confusion/unet.log",
        "figure_class_distribution.log",
        "figure_outliers.log",
    ]:
        assert expected in logs
    assert "val_miou" in (tiny_run / "logs/train/unet/seed1/member0.log").read_text()
    outliers = yaml.safe_load((tiny_run / "results/data/outliers.json").read_text())
    assert outliers["n_dropped"] == 5 and outliers["n_kept"] == 43


def test_label_maps_are_stored_compressed_and_images_as_they_are(tiny_run):
    results = tiny_run / "results"
    label_maps = [
        *results.glob("predictions/**/*.npz"),
        *results.glob("postprocessed/**/*.npz"),
        results / "data/synthetic/test_masks.npz",
    ]
    assert len(label_maps) == 2 * (1 + 3) + 1  # per seed a prediction and 3 methods; masks
    for path in label_maps:
        with zipfile.ZipFile(path) as archive:
            assert {m.compress_type for m in archive.infolist()} == {zipfile.ZIP_DEFLATED}, path
    with zipfile.ZipFile(results / "data/test.npz") as archive:
        assert {m.compress_type for m in archive.infolist()} == {zipfile.ZIP_STORED}


def test_data_steps_are_byte_identical_across_runs(tiny_run, tmp_path):
    targets = [
        "results/data/filtered.npz",
        "results/data/train.npz",
        "results/data/val.npz",
        "results/data/augmented.npz",
    ]
    snakemake(tmp_path, "--cores", "2", *targets)
    for target in targets:
        assert (tmp_path / target).read_bytes() == (tiny_run / target).read_bytes(), target


TINY_TRAINING = yaml.safe_load(TINY_CONFIG.read_text())["training"]
TINY_UNET = yaml.safe_load(TINY_CONFIG.read_text())["variants"]["unet"]
TINY_BIGROCK = {
    "architecture": "bigrock_binary",
    "target": "big_rock",
    "params": TINY_UNET["params"],
    "loss": {"name": "focal", "class_weights": [1.0, 10.0]},
}


def _tiny_config(**changes):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    for key, value in changes.items():
        config[key] = value
    return config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"outlier": {"max_group_size": 3}},
            "config: the top level: Additional properties are not allowed.*"
            "Fix: did you mean 'outliers' for 'outlier'",
        ),
        ({"seeds": "one"}, "config: seeds: 'one' is not of type 'array'. Fix"),
        ({"seeds": [-1]}, "config: seeds.0: -1 is less than the minimum of 0"),
        ({"run_variants": []}, "config: run_variants: .* should be non-empty"),
        (
            {"variants": {"unet": {**TINY_UNET, "params": {"filter": [4, 8]}}}},
            "variant 'unet': unknown param.*'filter'.*valid: filters.*Fix: correct variants.unet",
        ),
        (
            {
                "variants": {
                    "unet": {**TINY_UNET, "loss": {"name": "focal", "class_weights": [0, 1]}}
                }
            },
            "variant 'unet' has 2 class_weights .* 5 classes. Fix: give 5 weights",
        ),
        (
            {"augmentation": {"steps": [{"name": "brightness", "max_delt": 3}]}},
            r"augmentation 'brightness' has no parameter\(s\) \['max_delt'\]. Fix: use max_delta",
        ),
        (
            {"synthetic": {"n_train": 10, "n_test": 4, "n_aliens": 10}},
            r"synthetic.n_aliens \(10\) leaves no real images .* Fix: make n_aliens smaller",
        ),
        (
            {"variants": {"unet": {"architecture": "unte", "loss": {"name": "focal"}}}},
            "architecture 'unte'.*Fix: use one of",
        ),
        ({"postprocessing": {"methods": ["nearest"]}}, "'nearest' is not one of"),
        (
            {"training": {**TINY_TRAINING, "micro_batch_size": 5}},
            "micro_batch_size 5, which does not divide 16. Fix",
        ),
        ({"training": {**TINY_TRAINING, "micro_batch_size": "autoo"}}, "'autoo' is not valid"),
        (
            {"training": {**TINY_TRAINING, "learning_rate": float("nan")}},
            r"config: training.learning_rate is nan. Fix: give a finite number",
        ),
        (
            {"variants": {"unet": {**TINY_UNET, "params": {"filters": [4] * 7}}}},
            r"variant 'unet': param 'filters' has 7 widths.*64x128 inputs allow at most 6",
        ),
        (
            {
                "variants": {"unet": TINY_UNET, "bigrock": TINY_BIGROCK},
                "ensembles": {"mix": ["unet", "bigrock"]},
            },
            r"ensemble 'mix' lists 'bigrock', a Big Rock helper .* 2 classes, not 5. Fix",
        ),
        (
            {
                "variants": {"unet": TINY_UNET, "bigrock": TINY_BIGROCK},
                "run_variants": ["unet", "bigrock"],
            },
            r"run_variants lists 'bigrock', a Big Rock helper .* Fix: remove it from run_variants",
        ),
        (
            {"variants": {"unet": TINY_UNET, "bigrock": {**TINY_BIGROCK, "target": "classes"}}},
            r"variant 'bigrock' has architecture bigrock_binary.* Fix: add `target: big_rock`",
        ),
        (
            {"variants": {"unet": {**TINY_UNET, "loss": {**TINY_UNET["loss"], "max_weight": 9}}}},
            r"variant 'unet' sets max_weight in its focal loss, which acts only with class_weights: "
            r"inverse_frequency",
        ),
        (
            {"split": {"leaky": True}, "augmentation": {"steps": [{"name": "rotate180"}]}},
            r"split.leaky is true, but augmentation.steps \['rotate180'\] make no copies .* "
            r"Fix: add `- name: flips`",
        ),
        (
            {"raw_data": "/nonexistent/mars_for_students.npz"},
            r"config: raw_data '/nonexistent/mars_for_students.npz' does not exist\. Fix: set",
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


def _copies_across(train_images, val_images):
    """How many validation images equal a training image or one of its flips."""
    seen = set()
    for image in train_images:
        for flipped in (image, image[:, ::-1], image[::-1], image[::-1, ::-1]):
            seen.add(flipped.tobytes())
    return sum(image.tobytes() in seen for image in val_images)


def test_the_tuning_target_searches_and_writes_the_best_as_config_entries(tmp_path):
    overlay = tmp_path / "tuning.yaml"
    overlay.write_text("tuning: {variants: [unet], n_trials: 2, epochs: 1}\n")
    snakemake(tmp_path, "tuning", "--cores", "2", "--resources", "gpu=1", "--configfile", overlay)
    trials = pd.read_csv(tmp_path / "results/tuning/unet/trials.csv")
    assert list(trials.trial) == [0, 1] and trials.best_val_miou.between(0, 1).all()
    best = yaml.safe_load((tmp_path / "results/tuning/unet/best.yaml").read_text())
    row = trials.set_index("trial").loc[best["trial"]]
    assert best["best_val_miou"] == pytest.approx(row.best_val_miou)
    assert best["config"]["training"]["learning_rate"] == pytest.approx(row.learning_rate)
    assert best["config"]["loss"]["name"] == "focal"  # the variant's whole loss, values filled in
    assert best["config"]["loss"]["gamma"] == pytest.approx(row.focal_gamma)
    assert not (tmp_path / "results/checkpoints/tuning/unet").exists()  # the journal is gone


@pytest.mark.parametrize("leaky", [False, True])
def test_leaky_switch_puts_copies_on_both_sides(tmp_path, leaky):
    """The README's ablation: the shipped overlay experiments/leaky_split.yaml."""
    run = tmp_path / "run"
    overlay = ["--configfile", str(REPO / "experiments" / "leaky_split.yaml")] if leaky else []
    targets = ["results/data/train.npz", "results/data/val.npz"]
    snakemake(run, *targets, "--cores", "1", *overlay)  # --configfile takes what follows it
    train = np.load(run / "results/data/train.npz")["images"]
    val = np.load(run / "results/data/val.npz")["images"]
    copies = _copies_across(train, val)
    if leaky:  # augmented (x4 flips) before the split: most validation images leak
        assert len(train) + len(val) == 4 * 43 and copies > len(val) // 2
    else:
        assert len(train) + len(val) == 43 and copies == 0


def test_every_variant_ensemble_and_big_rock_helper(tmp_path):
    """All architectures, a separately trained pair, a Big Rock helper and a soft-vote ensemble
    go through train -> predict (with TTA) -> post-process -> score -> table."""
    config = TINY_CONFIG.parent / "tiny_variants.yaml"
    snakemake(tmp_path, "--cores", "2", "--resources", "gpu=1", config=config)
    table = pd.read_csv(tmp_path / "results" / "comparison.csv").set_index(
        ["variant", "tta", "postprocessing"]
    )
    variants = [
        "unet",
        "stacked",
        "parallel_symmetric",
        "parallel_unbalanced",
        "separate",
        "multipath",
        "unet_multipath",
    ]
    assert sorted(table.index) == sorted(
        (v, t, m) for v in variants for t in ["off", "on"] for m in ["none", "nearest_label"]
    )
    assert table.miou_mean.between(0, 1).all()
    info = {
        (name, m): yaml.safe_load(
            (tmp_path / f"results/training/{name}/seed1/member{m}_info.json").read_text()
        )
        for name, m in [
            ("unet", 0),
            ("multipath", 0),
            ("bigrock", 0),
            ("separate", 0),
            ("separate", 1),
        ]
    }
    params = table.parameters.xs(("off", "none"), level=["tta", "postprocessing"])
    # separate: two unets; unet: itself plus its Big Rock helper; the ensemble: unet + multipath
    # and unet's helper, which it applies
    assert params["separate"] == info["separate", 0]["parameter_count"] * 2
    assert (
        params["unet"] == info["unet", 0]["parameter_count"] + info["bigrock", 0]["parameter_count"]
    )
    assert params["unet_multipath"] == (
        info["unet", 0]["parameter_count"]
        + info["multipath", 0]["parameter_count"]
        + info["bigrock", 0]["parameter_count"]
    )
    features = table.features.xs(("off", "none"), level=["tta", "postprocessing"])
    assert features["unet_multipath"].endswith("; Big Rock from bigrock where p >= 0.4")
    assert info["bigrock", 0]["target"] == "big_rock"
    assert info["separate", 1]["loss"]["name"] == "sparse_categorical_crossentropy"
    assert info["separate", 1]["seed"] == 1001 and info["separate", 0]["seed"] == 1
    weights = info["multipath", 0]["loss"]["class_weights"]
    assert weights[0] == 0 and weights[4] > weights[1]  # inverse frequency, background 0
    assert (tmp_path / "results/models/separate/seed1/member1.keras").exists()


@pytest.mark.parametrize(
    ("overlays", "trained"),
    [
        (["profiles/cpu-demo/demo.yaml"], {"unet/seed42/member0"}),
        (
            ["experiments/background_levers.yaml"],
            {"unet/seed42/member0", "unet_background_weight_1/seed42/member0"},
        ),
        (
            ["experiments/background_levers.yaml", "experiments/single_unet_to_convergence.yaml"],
            {"unet/seed42/member0"},
        ),
        (["profiles/cpu-demo/demo.yaml", "experiments/leaky_split.yaml"], {"unet/seed42/member0"}),
    ],
)
def test_shipped_config_overlays_plan_the_runs_they_describe(tmp_path, overlays, trained):
    result = snakemake(
        tmp_path,
        "-n",
        "--cores",
        "2",
        "--resources",
        "gpu=1",
        "--configfile",
        *(str(REPO / overlay) for overlay in overlays),
        config=REPO / "config.yaml",
    )
    planned = set(re.findall(r"results/models/(\S+?)\.keras", result.stdout))
    assert planned == trained, result.stdout[-3000:]
