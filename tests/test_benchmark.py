"""Smoke test of the benchmark: `--quick` on the tiny config writes both tables, with a row for
every measurement and positive numbers. The no-op rerun part is left out: it needs a complete
workflow run first (about a minute on two cores); `--quick` alone runs it."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from marsseg.benchmark import SECTIONS

REPO = Path(__file__).resolve().parents[1]


def test_quick_benchmark_writes_markdown_and_csv(tmp_path):
    command = [sys.executable, "-m", "marsseg.benchmark", "--quick", "--out-dir", str(tmp_path)]
    command += ["--config", str(REPO / "tests" / "configs" / "tiny.yaml")]
    command += ["--parts", "data,postprocess,dryrun,memory,prediction,training"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]

    with open(tmp_path / "benchmark.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    found = {(row["name"], row["variant"]) for row in rows}
    expected = {
        ("synthetic dataset (generate_course_dataset)", ""),
        ("outlier filter (find_outliers)", ""),
        ("split (split_indices)", ""),
        ("augmentation (flips)", ""),
        ("apply_method none", ""),
        ("apply_method no_background", ""),
        ("apply_method nearest_label", ""),
        ("score (metrics.score)", ""),
        ("snakemake -n", ""),
        ("peak RSS, training", "unet"),
        ("peak RSS, prediction", "unet"),
        ("predict_labels, no TTA", "unet"),
        ("predict_labels, TTA (4 flips)", "unet"),
        ("bare model.fit", "unet"),
        ("train_member (the rule)", "unet"),
        ("ratio train_member / bare", "unet"),
        ("ratio train_member / bare, CPU time", "unet"),
        ("ratio, within the rule's epochs", "unet"),
    }
    assert found == expected
    for row in rows:
        assert float(row["median"]) > 0, row
        assert float(row["min"]) <= float(row["median"]) <= float(row["max"]), row
        # training: one epoch of the rule and one bare epoch, after the untimed first of each
        assert row["repeats"] == "1", row
        if row["name"] == "ratio, within the rule's epochs":  # a share of the epoch
            assert float(row["median"]) < 1, row
        if row["name"].startswith("peak RSS"):  # a Keras process, well under the goal when tiny
            assert row["unit"] == "MiB" and 200 < float(row["median"]) < 3072, row

    # the ratio pairs each of the rule's epochs with the bare epoch run right after it
    median = {(row["name"], row["variant"]): float(row["median"]) for row in rows}
    rule, bare = median["train_member (the rule)", "unet"], median["bare model.fit", "unet"]
    assert median["ratio train_member / bare", "unet"] == pytest.approx(rule / bare)

    markdown = (tmp_path / "benchmark.md").read_text()
    for title in ("Machine", *SECTIONS.values()):
        assert f"## {title}\n" in markdown
    assert markdown.count("| unet |") == 9
