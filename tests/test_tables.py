"""The comparison table: mean ± std over seeds, and what it reads from score, info and
benchmark files."""

import json
import math
from pathlib import Path

import pytest

from marsseg.io import save_json
from marsseg.tables import comparison_table, display_rows, to_markdown

BENCHMARK_HEADER = (
    "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
)


def write_record(tmp_path, seed: int, miou: float, big_rock: float, peaks: list[str]) -> dict:
    """The files of one seed's result of a variant with one model per entry of `peaks` (each
    model's max_rss as Snakemake writes it, NA when unsampled)."""
    folder = tmp_path / f"seed{seed}"
    folder.mkdir()
    iou = {"1": 0.5, "2": 0.4, "3": 0.3, "4": big_rock}
    save_json(folder / "score.json", {"mean_iou": miou, "per_class_iou": iou})
    infos, benchmarks = [], []
    for m, peak in enumerate(peaks):
        info = {"parameter_count": 1000, "epochs_run": 3, "train_seconds": 10.0}
        save_json(folder / f"member{m}_info.json", info)
        benchmark = folder / f"member{m}.tsv"
        benchmark.write_text(BENCHMARK_HEADER + f"10.0\t0:00:10\t{peak}" + "\tNA" * 7 + "\n")
        infos.append(str(folder / f"member{m}_info.json"))
        benchmarks.append(str(benchmark))
    return {
        "variant": "unet",
        "features": "UNet",
        "seed": seed,
        "tta": "off",
        "method": "none",
        "score": str(folder / "score.json"),
        "infos": infos,
        "benchmarks": benchmarks,
    }


def test_mean_and_std_over_seeds_and_costs_summed_over_models(tmp_path):
    records = [
        write_record(tmp_path, 1, 0.40, 0.0, ["900", "1200"]),
        write_record(tmp_path, 2, 0.50, 0.2, ["1000", "800"]),
    ]
    [row] = comparison_table(records).to_dict("records")
    assert row["n_seeds"] == 2
    assert row["miou_mean"] == pytest.approx(0.45)
    assert row["miou_std"] == pytest.approx(math.sqrt(0.005))  # sample std of 0.40, 0.50
    assert row["iou_big_rock_mean"] == pytest.approx(0.1)
    assert (row["parameters"], row["epochs_mean"], row["train_seconds_mean"]) == (2000, 6, 20)
    assert row["train_peak_mb"] == 1200


def test_an_unsampled_peak_is_skipped_wherever_it_comes(tmp_path):
    records = [write_record(tmp_path, 1, 0.4, 0.1, ["NA", "700"])]
    assert comparison_table(records).train_peak_mb[0] == 700
    records = [write_record(tmp_path, 2, 0.4, 0.1, ["NA"])]
    assert math.isnan(comparison_table(records).train_peak_mb[0])


def test_an_iou_with_nothing_to_score_is_standard_json_null_and_shown_as_a_dash(tmp_path):
    record = write_record(tmp_path, 1, 0.4, float("nan"), ["500"])
    saved = json.loads(Path(record["score"]).read_text(), parse_constant=pytest.fail)
    assert saved["per_class_iou"]["4"] is None
    table = comparison_table([record])
    assert math.isnan(table.iou_big_rock_mean[0])
    [cells] = display_rows(table)
    assert cells[4] == "0.400 (n=1)" and cells[8] == "–"


def test_the_best_mean_comes_first_with_its_spread_in_the_markdown(tmp_path):
    records = []
    for variant, scores in (("worse", [0.30, 0.32]), ("better", [0.40, 0.50])):
        (tmp_path / variant).mkdir()
        for seed, miou in enumerate(scores, start=1):
            record = write_record(tmp_path / variant, seed, miou, 0.1, ["500"])
            records.append({**record, "variant": variant})
    table = comparison_table(records)
    assert table.variant.tolist() == ["better", "worse"]
    lines = to_markdown(table).splitlines()
    assert lines[0].startswith("| variant | features | TTA | post-processing | mIoU | soil |")
    assert lines[2].startswith("| better | UNet | off | none | 0.450 ± 0.071 (n=2) | 0.500 |")
    assert lines[3].startswith("| worse | UNet | off | none | 0.310 ± 0.014 (n=2) |")
