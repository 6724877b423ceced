"""The benchmark: `--quick` on the tiny config writes both tables, with a row for every
measurement and positive numbers; and its parts that judge and read results, on made-up input."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from marsseg import benchmark
from marsseg.benchmark import (
    QUICK_SYNTHETIC,
    RUN_MARKER,
    SECTIONS,
    bench_memory,
    check_workdir,
    course_config,
    course_run,
    machine_info,
    main,
    meets,
    predicted_names,
    rule_benchmarks,
    rule_rows,
    summary,
    write_results,
)
from marsseg.training import accelerators

REPO = Path(__file__).resolve().parents[1]


def test_quick_benchmark_writes_markdown_and_csv(tmp_path):
    command = [sys.executable, "-m", "marsseg.benchmark", "--quick", "--out-dir", str(tmp_path)]
    command += ["--config", str(REPO / "tests" / "configs" / "tiny.yaml")]
    command += ["--parts", "data,postprocess,dryrun,noop,memory,prediction,training"]
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
        ("no-op rerun", ""),
        ("peak RSS, training", "unet"),
        ("peak RSS, prediction", "unet"),
        ("predict_labels, no TTA", "unet"),
        ("predict_labels, TTA (4 flips)", "unet"),
        ("bare model.fit", "unet"),
        ("train_member (the rule)", "unet"),
        ("ratio train_member / bare", "unet"),
        ("share of the rule's epochs in training steps", "unet"),
    }
    if not accelerators():  # with an accelerator the work is not the process's CPU time
        expected.add(("ratio train_member / bare, CPU time", "unet"))
    assert found == expected
    for row in rows:
        assert float(row["median"]) > 0, row
        assert row["ok"] == "", row  # quick: the goals are for course size
        if row["name"].startswith("peak RSS"):  # a Keras process, well under the goal when tiny
            assert row["unit"] == "MiB" and 200 < float(row["median"]) < 3072, row
    goals = {row["name"]: row["goal"] for row in rows}
    assert goals["ratio train_member / bare"] == ">= 0.95"  # the goal: wall time only
    assert goals.get("ratio train_member / bare, CPU time", "") == ""
    assert goals["share of the rule's epochs in training steps"] == ""
    assert goals["no-op rerun"] == "<= 3"
    noop = next(row for row in rows if row["name"] == "no-op rerun")
    assert "outputs of the whole DAG up to date" in noop["note"]

    # the ratio pairs each of the rule's epochs with the bare epoch run right after it
    median = {(row["name"], row["variant"]): float(row["median"]) for row in rows}
    rule, bare = median["train_member (the rule)", "unet"], median["bare model.fit", "unet"]
    assert median["ratio train_member / bare", "unet"] == pytest.approx(rule / bare)

    markdown = (tmp_path / "benchmark.md").read_text()
    for title in ("Machine", *(SECTIONS[key] for key in SECTIONS if key != "rules")):
        assert f"## {title}\n" in markdown
    assert markdown.count("| unet |") == len(expected) - 10  # 10 rows of no variant
    assert "| status | complete |" in markdown


def test_rules_part_runs_the_workflow_and_reads_every_rules_benchmark_file(tmp_path):
    command = [sys.executable, "-m", "marsseg.benchmark", "--quick", "--parts", "rules"]
    command += [
        "--out-dir",
        str(tmp_path),
        "--config",
        str(REPO / "tests" / "configs" / "tiny.yaml"),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]

    with open(tmp_path / "benchmark.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["section"] for row in rows} == {SECTIONS["rules"]}  # no data part: not asked for
    jobs = {row["name"].removeprefix("peak RSS, "): row for row in rows}
    whole = jobs.pop("whole workflow run")
    # every rule of the tiny run, read from its own benchmark file (tiny.yaml: seeds 1 and 2)
    rules = {job.split("/")[0] for job in jobs}
    assert {"synthesize", "load_raw", "filter_outliers", "split", "augment", "train"} <= rules
    assert {"predict", "postprocess", "score", "comparison_table", "submission"} <= rules
    assert {"train/unet/seed1/member0", "train/unet/seed2/member0"} <= set(jobs)
    assert len(jobs) == len(list((tmp_path / "bench_run" / "benchmarks").rglob("*.tsv")))
    for row in jobs.values():
        assert row["goal"] == "<= 3072" and row["ok"] == "", row  # quick: not judged
        assert re.fullmatch(r"runtime [\d.]+ s, CPU time [\d.]+ s.*", row["note"]), row
    # a Keras training process takes hundreds of MiB, and the run took longer than its jobs
    assert 200 < float(jobs["train/unet/seed1/member0"]["median"]) < 3072
    longest = max(float(re.search(r"runtime ([\d.]+)", r["note"])[1]) for r in jobs.values())
    assert float(whole["median"]) > longest
    assert (tmp_path / "bench_run" / "results" / "comparison.csv").exists()
    markdown = (tmp_path / "benchmark.md").read_text()
    if not accelerators():
        assert "| rules: variants | unet (no accelerator: the first only" in markdown
    else:
        assert "| rules: variants | all of the config's |" in markdown
    assert "| repeats |" not in markdown  # one run of the workflow, not repeats


def test_the_rules_run_config_takes_one_epoch_and_on_a_cpu_the_first_variant_at_quarter_width():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["variants"]["multipath"]["training"]["epochs"] = 30  # a variant's own epochs
    course, quick = config["synthetic"], {**config["synthetic"], **QUICK_SYNTHETIC}

    everything = course_config(config, course, cpu_only=False, variants=None)
    assert everything["run_variants"] is None  # all of them, as the config says
    assert everything["training"]["epochs"] == 1
    assert everything["variants"]["multipath"]["training"]["epochs"] == 1
    assert everything["variants"]["unet"] == config["variants"]["unet"]  # full width
    assert everything["synthetic"] == config["synthetic"]  # course size
    assert config["training"]["epochs"] != 1  # the caller's config is left as it was

    chosen = ["parallel_unbalanced", "unet"]
    on_gpu = course_config(config, course, cpu_only=False, variants=chosen)
    assert on_gpu["run_variants"] == chosen
    on_cpu = course_config(config, quick, cpu_only=True, variants=chosen)
    assert on_cpu["run_variants"] == ["parallel_unbalanced"]
    params = on_cpu["variants"]["parallel_unbalanced"]["params"]
    assert (params["filters_a"], params["filters_b"]) == ([8, 16, 32], [8, 16])
    assert on_cpu["variants"]["unet"]["params"]["filters"] == [32, 64, 128]  # not run
    assert on_cpu["synthetic"] == {**config["synthetic"], **QUICK_SYNTHETIC}
    assert course_config(config, course, True, None)["run_variants"] == ["unet"]  # the first


def test_the_rules_part_runs_and_labels_the_benchmarks_synthetic_data(tmp_path, monkeypatch):
    config = {**yaml.safe_load((REPO / "config.yaml").read_text()), "raw_data": "/data/real.npz"}
    (tmp_path / "real.yaml").write_text(yaml.safe_dump(config))
    run = []
    monkeypatch.setattr(benchmark, "course_run", lambda config, workdir: run.append(config) or 9.0)
    rows, settings = [], {}
    sizes = {**config["synthetic"], **QUICK_SYNTHETIC}
    benchmark.bench_rules(tmp_path / "real.yaml", tmp_path / "run", None, sizes, rows, settings)
    assert (run[0]["raw_data"], run[0]["synthetic"]) == ("synthetic", sizes)
    assert [(row["name"], row["size"], row["median"]) for row in rows] == [
        ("whole workflow run", "96 + 64 images, 1 epoch", 9.0)
    ]


def test_the_rules_part_empties_only_a_working_directory_of_its_own(tmp_path, capsys):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("months of work")
    with pytest.raises(ValueError, match="no run of the benchmark made"):
        course_run({}, theirs)
    args = ["--quick", "--parts", "rules", "--workdir", str(theirs)]
    args += ["--config", str(REPO / "tests" / "configs" / "tiny.yaml")]
    with pytest.raises(SystemExit):  # refused before any part runs
        main([*args, "--out-dir", str(tmp_path / "out")])
    assert "no run of the benchmark made" in capsys.readouterr().err
    assert (theirs / "thesis.tex").read_text() == "months of work"
    assert not (tmp_path / "out").exists()

    (theirs / RUN_MARKER).touch()  # as an earlier run leaves it: emptied and run again
    check_workdir(theirs)
    check_workdir(tmp_path / "empty")  # not there yet
    with pytest.raises(RuntimeError, match="snakemake"):  # the config is not a study's
        course_run({}, theirs)
    assert sorted(p.name for p in theirs.iterdir()) == [RUN_MARKER, ".snakemake", "config.yaml"]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--repeats", "0"], "argument --repeats: 0 is less than 1"),
        (["--train-images", "-5"], "argument --train-images: -5 is less than 0"),
        (["--predict-images", "-1"], "argument --predict-images: -1 is less than 0"),
        (
            ["--variants", "unet, nope"],
            "--variants: unknown variant(s) ['nope']; the config's: unet",
        ),
    ],
)
def test_options_out_of_range_are_refused_before_anything_runs(tmp_path, capsys, option, message):
    args = ["--config", str(REPO / "tests" / "configs" / "tiny.yaml"), "--parts", "data"]
    with pytest.raises(SystemExit):
        main([*args, *option, "--out-dir", str(tmp_path / "out")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_quick_takes_the_repeats_it_is_given(tmp_path):
    command = [sys.executable, "-m", "marsseg.benchmark", "--quick", "--repeats", "2"]
    command += ["--parts", "data", "--out-dir", str(tmp_path)]
    command += ["--config", str(REPO / "tests" / "configs" / "tiny.yaml")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    with open(tmp_path / "benchmark.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and {row["repeats"] for row in rows} == {"2"}


def _benchmark_rows(out_dir: Path, *args: str) -> tuple[list[dict], str]:
    """Run the benchmark with `args` into `out_dir`: its CSV rows and its markdown."""
    command = [sys.executable, "-m", "marsseg.benchmark", "--out-dir", str(out_dir), *args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    with open(out_dir / "benchmark.csv", newline="") as handle:
        return list(csv.DictReader(handle)), (out_dir / "benchmark.md").read_text()


def test_goals_are_judged_at_course_size_only(tmp_path):
    tiny = str(REPO / "tests" / "configs" / "tiny.yaml")
    rows, markdown = _benchmark_rows(tmp_path / "tiny", "--parts", "postprocess", "--config", tiny)
    assert "| mode | full, at the config's size (48 + 12 images; course size is 2615 + 10022)" in (
        markdown
    )
    goals = [row for row in rows if row["goal"]]
    assert len(goals) == 6 and {row["ok"] for row in goals} == {""}  # 12 masks: not judged

    # config.yaml is course size: its Snakemake goal is judged
    rows, markdown = _benchmark_rows(tmp_path / "course", "--parts", "noop", "--repeats", "1")
    assert "| mode | full |" in markdown
    assert [(row["name"], row["goal"]) for row in rows] == [("no-op rerun", "<= 3")]
    assert rows[0]["ok"] == ("yes" if float(rows[0]["median"]) <= 3 else "no")


def test_the_prediction_part_predicts_the_chosen_variants_and_their_ensembles():
    config = {
        "variants": {"unet": {}, "stacked": {}, "rocks": {"target": "big_rock"}},
        "ensembles": {"pair": ["unet", "stacked"], "solo": ["unet"]},
    }
    assert predicted_names(config, ["unet"]) == ["unet", "solo"]
    assert predicted_names(config, ["stacked", "rocks"]) == ["stacked"]  # a helper: not scored
    assert predicted_names(config, list(config["variants"])) == ["unet", "stacked", "pair", "solo"]


def test_a_run_that_stops_leaves_the_parts_it_did_marked_incomplete(tmp_path):
    not_a_directory = tmp_path / "run"
    not_a_directory.write_text("")  # the rules part cannot make its working directory here
    command = [sys.executable, "-m", "marsseg.benchmark", "--quick", "--parts", "data,rules"]
    command += ["--workdir", str(not_a_directory), "--out-dir", str(tmp_path / "out")]
    command += ["--config", str(REPO / "tests" / "configs" / "tiny.yaml")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "FileExistsError" in result.stderr
    markdown = (tmp_path / "out" / "benchmark.md").read_text()
    assert "| status | incomplete: a run in progress, or one that stopped" in markdown
    assert f"## {SECTIONS['data']}\n" in markdown and SECTIONS["rules"] not in markdown
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "benchmark.csv",
        "benchmark.md",
    ]


def _stop_when(process: subprocess.Popen, started) -> int:
    """SIGTERM to `process` once `started()` is true (within a minute); its exit status."""
    deadline = time.monotonic() + 60
    while not started() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started()
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=120)


def test_a_benchmark_stopped_by_sigterm_leaves_no_temporary_directory(tmp_path):
    command = [sys.executable, "-m", "marsseg.benchmark", "--quick", "--parts", "dryrun"]
    command += ["--out-dir", str(tmp_path / "out")]
    command += ["--config", str(REPO / "tests" / "configs" / "tiny.yaml")]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    benchmark = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    # stopped while Snakemake plans the DAG in the part's temporary directory
    status = _stop_when(benchmark, lambda: list(tmp_path.glob("marsseg-bench-*/.snakemake")))
    assert list(tmp_path.glob("marsseg-bench-*")) == []  # (Snakemake may leave its own)
    assert not (tmp_path / "out").exists()  # no part was done
    assert status == 128 + signal.SIGTERM  # an exit, as from an error


def _processes_in(directory: Path) -> list[str]:
    """The command lines of the processes whose working directory is `directory`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(proc / "cwd")) == directory:
                found.append((proc / "cmdline").read_text().replace("\0", " "))
        except OSError:  # gone, or not ours to read
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="reads /proc")
def test_a_benchmark_stopped_by_sigterm_stops_its_workflow_run(tmp_path):
    command = [sys.executable, "-m", "marsseg.benchmark", "--quick", "--parts", "rules"]
    command += ["--out-dir", str(tmp_path)]
    command += ["--config", str(REPO / "tests" / "configs" / "tiny.yaml")]
    benchmark = subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL)
    run = tmp_path / "bench_run"
    status = _stop_when(benchmark, lambda: (run / "logs" / "synthesize.log").exists())
    time.sleep(1)  # Snakemake and its jobs end on SIGTERM: give them a moment
    assert _processes_in(run) == []
    assert status == 128 + signal.SIGTERM


def test_a_failed_save_leaves_the_last_saved_files_whole(tmp_path):
    row = summary("section", "what", [1.0, 2.0, 3.0], "s")
    write_results([row], {"CPU": "test"}, {"status": "complete"}, tmp_path)
    saved = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(saved) == ["benchmark.csv", "benchmark.md"]
    assert b"| what |  |  | 2.00 | 1.00 | 3.00 | s | 3 |" in saved["benchmark.md"]
    without_note = {key: value for key, value in row.items() if key != "note"}
    with pytest.raises(KeyError, match="note"):  # the markdown table needs every column
        write_results([row, without_note], {}, {}, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == saved  # and no temporary


def test_the_memory_part_probes_every_training_and_every_prediction(monkeypatch):
    config = {
        "variants": {"one": {}, "two": {}, "rocks": {"target": "big_rock"}},
        "ensembles": {"pair": ["one", "two"]},
    }
    images = np.zeros((12, 64, 128), np.uint8)
    data = {
        f"{split}_{kind}": images
        for split in ("train", "val", "test")
        for kind in ("images", "masks")
    }
    probed = []

    def probe(command, **kwargs):  # python -m marsseg.memory_probe MODE CONFIG NAME ...
        probed.append((command[3], command[5], command[-1]))
        measured = {"peak_rss_mib": 900 + len(probed), "seconds": 2.0, "label_maps_mib": 1}
        measured.update(batch_size=16, micro_batch_size=8)
        return subprocess.CompletedProcess(command, 0, json.dumps(measured) + "\n", "")

    monkeypatch.setattr(subprocess, "run", probe)
    rows = []
    bench_memory(config, list(config["variants"]), data, rows, quick=True)
    trained = [("train", name, "2") for name in ("one", "two", "rocks")]
    predicted = [("predict", name, "12") for name in ("one", "two", "pair")]  # not the helper
    assert probed == trained + predicted
    assert [(row["name"], row["variant"], row["median"]) for row in rows] == [
        (f"peak RSS, {'training' if mode == 'train' else 'prediction'}", name, 901 + i)
        for i, (mode, name, _) in enumerate(probed)
    ]
    assert rows[0]["size"] == "12 train images, 2 batches (batch 16 in passes of 8)"
    assert (
        rows[-1]["size"] == "12 test images, 12 predicted with TTA, label maps of all held (1 MiB)"
    )


def test_the_rules_part_runs_on_the_cores_this_process_may_use(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})  # e.g. taskset -c 0-2
    run = []
    monkeypatch.setattr(benchmark, "snakemake", lambda workdir, *args: run.append(args) or (1, ""))
    course_run({"training": {}}, tmp_path / "run")
    assert run == [("--cores", "3", "--resources", "gpu=1")]
    assert re.fullmatch(r".+, \d+ logical cores \(3 usable\)", machine_info()["CPU"])


def test_summary_is_median_min_max_and_judged_against_its_goal():
    row = summary("section", "what", [3.0, 1.0, 2.0, 10.0, 2.5], "s", goal="<= 2.4")
    assert (row["median"], row["min"], row["max"], row["repeats"]) == (2.5, 1.0, 10.0, 5)
    assert row["ok"] == "no"
    assert summary("s", "ratio", [0.96, 0.94, 0.97], "", goal=">= 0.95")["ok"] == "yes"
    assert meets(0.95, ">= 0.95") == "yes" and meets(3.01, "<= 3") == "no" and meets(1, "") == ""


def test_rule_benchmarks_name_each_rule_and_leave_unsampled_jobs_unjudged(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    jobs = {
        "train/unet/seed42/member0": "203.1\t0:03:23\t1650.2\t1\t1\t1\t1\t1\t1\t390.5\n",
        "figure_predictions/unet": "4.2\t0:00:04\t3300.0\t1\t1\t1\t1\t1\t1\t3.9\n",
        "comparison_table": "0.4\t0:00:00\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n",
    }
    for job, line in jobs.items():
        path = tmp_path / "benchmarks" / f"{job}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + line)
    for log in (
        "train/unet/seed42/member0",
        "figure_predictions/unet",
        "comparison_table",
        "split",
    ):
        path = tmp_path / "logs" / f"{log}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    records, missing = rule_benchmarks(tmp_path)
    by_rule = {record["rule"]: record for record in records}
    assert set(by_rule) == {"train", "figure_predictions", "comparison_table"}
    assert (by_rule["train"]["max_rss_mib"], by_rule["train"]["ok"]) == (1650.2, "yes")
    assert by_rule["figure_predictions"]["ok"] == "no"  # over the 3 GB goal
    assert (by_rule["comparison_table"]["max_rss_mib"], by_rule["comparison_table"]["ok"]) == (
        "n/a",
        "",
    )
    assert missing == ["split"]  # logged, but wrote no benchmark file

    # the benchmark's rows: one per job, judged on its peak RSS, and one for the whole run
    rows = {row["name"]: row for row in rule_rows(records, missing, 310.0, "course size")}
    train = rows["peak RSS, train/unet/seed42/member0"]
    assert (train["median"], train["unit"], train["goal"], train["ok"]) == (
        1650.2,
        "MiB",
        "<= 3072",
        "yes",
    )
    assert train["note"] == "runtime 203 s, CPU time 390.5 s"
    assert rows["peak RSS, figure_predictions/unet"]["ok"] == "no"
    unsampled = rows["peak RSS, comparison_table"]
    assert (unsampled["median"], unsampled["repeats"], unsampled["ok"]) == ("n/a", 0, "")
    assert "no memory sample" in unsampled["note"]
    whole = rows["whole workflow run"]
    assert (whole["median"], whole["unit"]) == (310.0, "s")
    assert whole["note"].endswith("Rules without a `benchmark:` file (not measured): split")
    assert len(rows) == 4


def test_every_rule_writes_its_log_and_benchmark_under_its_own_name():
    """rule_benchmarks takes a job's rule from the first part of its benchmark path."""
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule )", smk.read_text(), flags=re.MULTILINE)[1:]:
            rule = re.match(r"rule (\w+):", block)[1]
            for kind in ("benchmarks", "logs"):
                for path in re.findall(rf'"{kind}/([^"]+)"', block):
                    assert re.split(r"[/.]", path)[0] == rule, (rule, path)


def test_a_failing_nvidia_smi_is_not_taken_for_a_gpu(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate'\nexit 9\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert machine_info()["GPU (nvidia-smi)"].startswith("nvidia-smi failed (exit 9)")


def test_a_hanging_nvidia_smi_does_not_hold_up_the_benchmark(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(benchmark, "NVIDIA_SMI_S", 0.5)
    started = time.monotonic()
    assert machine_info()["GPU (nvidia-smi)"] == "nvidia-smi gave no answer in 0.5 s"
    assert time.monotonic() - started < 10
