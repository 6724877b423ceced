"""The cluster path, on a real one-node Slurm (tests/slurm/cluster.py): the tiny workflow run with
`--profile profiles/slurm` sends every job but the localrules through sbatch; and a training job
cancelled with scancel mid-run is resubmitted (the profile's `retries`) and resumes from its
checkpoint. Without root Slurm cannot be started and these tests skip, saying why; as root, a
Slurm that cannot be installed or started fails them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm.cluster import SlurmCluster, SlurmError, SlurmUnavailable
from workflow_runner import (
    REPO,
    TINY_CONFIG,
    snakemake,
    snakemake_command,
    snakemake_environment,
)

from marsseg.checkpoint import epochs_completed

PROFILE = REPO / "profiles" / "slurm"
TARGET = "results/comparison.csv"
EPOCHS = 8  # enough that scancel lands between the first and the last epoch
TRAINING = "results/training/unet/seed1/member0"
MODEL = "results/models/unet/seed1/member0.keras"
CHECKPOINT = "results/checkpoints/unet/seed1/member0"
TRAIN_LOG = "logs/train/unet/seed1/member0.log"
SCORES = "results/scores/unet/seed1/tta_off"


@dataclass
class Job:
    local: bool
    rule: str
    wildcards: dict[str, str]
    resources: dict[str, str]

    @property
    def slurm_log_dir(self) -> str:
        """Where the executor plugin puts this job's Slurm logs, under .snakemake/slurm_logs."""
        values = "_".join(self.wildcards.values()).replace("/", "_")
        return f"rule_{self.rule}/{values}" if values else f"rule_{self.rule}"


def jobs_in(output: str) -> list[Job]:
    """The jobs Snakemake announced: `rule x:` (submitted) or `localrule x:`, with their details."""
    jobs = []
    for match in re.finditer(r"^(local)?rule (\w+):\n((?:    .*\n?)*)", output, re.MULTILINE):
        fields = dict(re.findall(r"^    (\w+): (.*)$", match[3], re.MULTILINE))
        jobs.append(
            Job(
                local=match[1] is not None,
                rule=match[2],
                wildcards=dict(re.findall(r"(\w+)=([^,]+)", fields.get("wildcards", ""))),
                resources=dict(re.findall(r"(\w+)=([^,]+)", fields.get("resources", ""))),
            )
        )
    return jobs


def rules_declaring_a_gpu() -> set[str]:
    """The rules whose `resources:` ask for `gpu=1`, read from workflow/rules/*.smk."""
    rules = set()
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule )", path.read_text(), flags=re.MULTILINE):
            if re.search(r"^        gpu=1,$", block, re.MULTILINE):
                rules.add(re.match(r"rule (\w+):", block)[1])
    return rules


def test_profile_asks_for_one_gpu_per_gpu_rule_without_serialising(tmp_path):
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["retries"] >= 1
    assert "resources" not in profile  # no global gpu=1 limit: Slurm runs GPU jobs side by side
    dry_run = snakemake(tmp_path, "--profile", str(PROFILE), "--dry-run", "all", "tuning")
    jobs = jobs_in(dry_run.stdout)
    by_rule = {job.rule: job.resources for job in jobs}
    gpu_rules = rules_declaring_a_gpu()
    assert gpu_rules == {"train", "predict", "tune"}
    for rule in gpu_rules:  # each on the profile's GPU partition, with CPUs beside its GPU
        assert by_rule[rule]["gpu"] == "1" and int(by_rule[rule]["cpus_per_gpu"]) >= 1, rule
        assert (
            by_rule[rule]["slurm_partition"] == profile["set-resources"]["train"]["slurm_partition"]
        ), rule
    assert "gpu" not in by_rule["split"]
    jobs_with_work = [job for job in jobs if job.rule not in ("all", "tuning")]  # targets only
    assert all({"slurm_partition", "runtime", "mem_mb"} <= set(j.resources) for j in jobs_with_work)


def test_a_longer_training_goes_in_the_profile_not_on_the_command_line(tmp_path):
    """The README's way to give training more time (runtime under the profile's
    `set-resources: train:`) keeps its GPU partition and CPUs; `--set-resources` on the command
    line replaces the profile's whole `set-resources`, which is why the README says not to."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    gpu_settings = profile["set-resources"]["train"]
    edited = tmp_path / "profile"
    edited.mkdir()
    profile["set-resources"]["train"]["runtime"] = 1440
    (edited / "config.yaml").write_text(yaml.safe_dump(profile))
    in_profile = jobs_in(snakemake(tmp_path / "a", "--profile", str(edited), "--dry-run").stdout)
    train = next(job.resources for job in in_profile if job.rule == "train")
    assert train["runtime"] == "1440" and train["gpu"] == "1"
    assert train["slurm_partition"] == gpu_settings["slurm_partition"]
    assert train["cpus_per_gpu"] == str(gpu_settings["cpus_per_gpu"])
    on_command_line = snakemake(
        tmp_path / "b", "--profile", str(PROFILE), "--set-resources", "train:runtime=1440", "-n"
    )
    train = next(job.resources for job in jobs_in(on_command_line.stdout) if job.rule == "train")
    assert train["runtime"] == "1440" and "cpus_per_gpu" not in train
    assert train["slurm_partition"] == profile["default-resources"]["slurm_partition"]


def test_every_rule_that_runs_a_script_declares_memory_and_runtime():
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule )", path.read_text(), flags=re.MULTILINE):
            if "    script:" in block:
                rule = re.match(r"rule (\w+):", block)[1]
                assert re.search(r"^        mem_mb=\d+,$", block, re.MULTILINE), rule
                assert re.search(r"^        runtime=\d+,$", block, re.MULTILINE), rule
    assert declared_memory()["train"] >= 1000


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    try:
        cluster = SlurmCluster.start(tmp_path_factory.mktemp("slurm-state"))
    except SlurmUnavailable as reason:
        pytest.skip(f"no Slurm here: {reason}")
    except SlurmError as error:
        pytest.fail(f"Slurm could not be installed or started: {error}", pytrace=False)
    yield cluster
    cluster.stop()


def declared_memory() -> dict[str, int]:
    """The mem_mb each rule declares in workflow/rules/*.smk."""
    memory = {}
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule )", path.read_text(), flags=re.MULTILINE):
            rule, mem_mb = re.match(r"rule (\w+):", block), re.search(r"mem_mb=(\d+)", block)
            if rule and mem_mb:
                memory[rule[1]] = int(mem_mb[1])
    return memory


def overrides(cluster: SlurmCluster) -> list[str]:
    """The profile's resources, with what this one-node test cluster needs instead: its
    partition, no account, no GPU (the node has no gpu gres) and memory the node has."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    memory = cluster.hardware["RealMemory"]

    def adapt(resources: dict) -> dict:
        resources = {**resources, "slurm_partition": cluster.partition}
        resources.pop("slurm_account", None)
        resources["mem_mb"] = min(resources.get("mem_mb", memory), memory)
        return resources

    default = adapt(profile["default-resources"])
    # Every rule declares the memory it needs at course size; this node may have less.
    per_rule = {rule: {"mem_mb": min(mem_mb, memory)} for rule, mem_mb in declared_memory().items()}
    for rule, resources in profile["set-resources"].items():
        per_rule[rule] = {**per_rule.get(rule, {}), **adapt(resources), "gpu": 0}
    return [
        "--default-resources",
        *(f"{key}={value}" for key, value in default.items()),
        "--set-resources",
        *(f"{rule}:{k}={v}" for rule, r in per_rule.items() for k, v in r.items()),
        # No slurmdbd here, so no sacct: poll squeue (MinJobAge=300 keeps finished jobs there).
        "--slurm-status-command=squeue",
        "--slurm-init-seconds-before-status-checks=2",
        "--seconds-between-status-checks=1",
        "--slurm-keep-successful-logs",
    ]


def checkpoint_epoch(workdir: Path) -> int:
    return epochs_completed(workdir / CHECKPOINT / "checkpoint.npz")


def running_training_job() -> str | None:
    """The Slurm id of the running training job (the plugin puts the rule in the comment)."""
    queue = subprocess.run(
        ["squeue", "--noheader", "--states=RUNNING", "--format=%i|%k"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in queue.splitlines():
        job_id, comment = line.split("|", 1)
        if comment.startswith("rule_train_"):
            return job_id
    return None


def processes_mentioning(text: str) -> list[str]:
    """Processes (other than this one) whose command line contains `text`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # ended meanwhile
        if text in args and int(cmdline.parent.name) != os.getpid():
            found.append(f"{cmdline.parent.name}: {args[:300]}")
    return found


@dataclass
class ClusterRun:
    workdir: Path
    output: str
    returncode: int
    cancelled_job: str
    epoch_before_cancel: int
    seconds: float


@pytest.fixture(scope="module")
def cluster_run(slurm, tmp_path_factory):
    """The tiny workflow (one seed, a few more epochs) on Slurm; once the training job has
    completed an epoch it is cancelled with scancel, and Snakemake resubmits it (retries)."""
    workdir = tmp_path_factory.mktemp("slurm-run")
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["seeds"] = [1]
    config["training"].update(
        epochs=EPOCHS, early_stopping_patience=EPOCHS, reduce_lr_patience=EPOCHS
    )
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = snakemake_command(workdir, "--profile", str(PROFILE), *overrides(slurm), "--", TARGET)
    log_path = workdir / "snakemake.out"
    started = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=snakemake_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 600
        while checkpoint_epoch(workdir) < 1:
            assert process.poll() is None, (
                f"Snakemake ended before a training epoch completed:\n{log_path.read_text()}"
            )
            assert time.monotonic() < deadline, "no training epoch completed in time"
            time.sleep(0.1)
        cancelled_job = running_training_job()
        assert cancelled_job, "the training job is not running under Slurm"
        epoch_before_cancel = checkpoint_epoch(workdir)
        subprocess.run(["scancel", cancelled_job], check=True)
        assert not (workdir / MODEL).exists(), "training ended before scancel: raise EPOCHS"
        returncode = process.wait(timeout=900)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return ClusterRun(
        workdir=workdir,
        output=log_path.read_text(),
        returncode=returncode,
        cancelled_job=cancelled_job,
        epoch_before_cancel=epoch_before_cancel,
        seconds=time.monotonic() - started,
    )


@pytest.mark.slow
@pytest.mark.slurm
def test_every_job_but_the_localrules_goes_through_sbatch(cluster_run):
    assert cluster_run.returncode == 0, cluster_run.output[-6000:]
    jobs = jobs_in(cluster_run.output)
    submitted = {job.slurm_log_dir for job in jobs if not job.local}
    assert {"rule_train/unet_1_0", "rule_predict/unet_1"} <= submitted
    # One Slurm log per submission (kept, --slurm-keep-successful-logs): the training job has
    # two, the cancelled one and its resubmission; the localrules (`all`, ...) have none.
    logs_root = cluster_run.workdir / ".snakemake" / "slurm_logs"
    slurm_logs = sorted(logs_root.rglob("*.log"))
    assert {log.parent.relative_to(logs_root).as_posix() for log in slurm_logs} == submitted
    assert len(slurm_logs) == len([job for job in jobs if not job.local])
    announced = re.findall(r"submitted with SLURM jobid (\d+) \(log: (.+?)\)", cluster_run.output)
    assert sorted(Path(path) for _, path in announced) == slurm_logs
    for log in slurm_logs:  # each ran Snakemake's Slurm job step, under Slurm
        text = log.read_text()
        assert "--executor slurm-jobstep" in text, log
        assert re.search(rf"rule {log.relative_to(logs_root).parts[0][5:]}:", text), log
    # and what they produced: a score per post-processing method, and the table over them
    scores = {p.stem: json.loads(p.read_text()) for p in (cluster_run.workdir / SCORES).glob("*")}
    assert scores and all(0 <= s["mean_iou"] <= 1 for s in scores.values())
    table = pd.read_csv(cluster_run.workdir / TARGET)
    assert sorted(table.postprocessing) == sorted(scores) and set(table.variant) == {"unet"}
    for column in ["miou_mean", "iou_soil_mean", "iou_bedrock_mean", "iou_sand_mean"]:
        assert table[column].between(0, 1).all(), column  # NaN is not between 0 and 1
    assert (table.n_seeds == 1).all() and (table.epochs_mean == EPOCHS).all()


@pytest.mark.slow
@pytest.mark.slurm
def test_a_cancelled_training_job_is_resubmitted_and_resumes(cluster_run):
    assert cluster_run.returncode == 0, cluster_run.output[-6000:]
    assert re.search(
        rf"SLURM-job '{cluster_run.cancelled_job}' failed.*CANCELLED", cluster_run.output
    )
    workdir = cluster_run.workdir
    resumed = re.search(r"Resuming from epoch (\d+)", (workdir / TRAIN_LOG).read_text())
    assert resumed, (workdir / TRAIN_LOG).read_text()[-3000:]
    resumed_from = int(resumed[1])
    assert 1 <= cluster_run.epoch_before_cancel <= resumed_from < EPOCHS
    info = json.loads((workdir / f"{TRAINING}_info.json").read_text())
    assert info["resumed_from_epoch"] == resumed_from and info["epochs_run"] == EPOCHS
    history = pd.read_csv(workdir / f"{TRAINING}_history.csv")
    assert history.epoch.tolist() == list(range(EPOCHS))
    assert not (workdir / CHECKPOINT).exists()  # cleaned up after the successful run
    # scancel ended every process of the cancelled job (none escaped Slurm's process tracking)
    deadline = time.monotonic() + 15
    while processes_mentioning(str(workdir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not processes_mentioning(str(workdir))
    train_logs = sorted((workdir / ".snakemake/slurm_logs/rule_train/unet_1_0").glob("*.log"))
    assert len(train_logs) == 2 and f"{cluster_run.cancelled_job}.log" in {
        log.name for log in train_logs
    }
