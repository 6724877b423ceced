"""How fast the workflow is, on course-size synthetic data (issue 7).

    python -m marsseg.benchmark [--quick] [--repeats N] [--out-dir results]     (make bench)

writes benchmark.md and benchmark.csv: the data steps, post-processing and scoring, Snakemake's own
overhead, prediction images/second with and without TTA, and training images/second of the
workflow's path (`train_member`: its data feeding, the per-epoch validation pass, checkpoints and
the other callbacks) against a bare `model.fit` of the same compiled model on the same in-memory
arrays. Each number is the median of `--repeats` runs, with min and max; for training a repeat is
one epoch, after a first epoch (compilation) that neither side counts, and a bare epoch runs
right after each of the rule's. Peak memory is one reading per variant's training and per
prediction (a fresh process each). The goals are judged at course size only (not with --quick,
nor on a smaller config). The data steps, post-processing and scoring run at course size;
without an accelerator, training and prediction take the first 1024 images (a CPU needs hours for
every variant at course size; `--train-images 0 --predict-images 0` for all). The `rules` part
runs the real workflow at course size, one epoch per variant, in <out-dir>/bench_run (or
--workdir: emptied first, so refused unless an earlier run made it) and reports each job's
runtime and peak RSS from its rule's `benchmark:` file. Both files are rewritten after each part,
and say `status: complete` only after the last.

The timed code uses Keras APIs only, so the same command measures whatever backend and device
Keras sees (a GPU, or KERAS_BACKEND=jax).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import functools
import importlib
import io
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from marsseg.io import atomic_path
from marsseg.training import accelerators
from marsseg.variants import big_rock_helper_of, helper_variants, resolve_members

REPO = Path(__file__).resolve().parents[2]
PARTS = ("data", "postprocess", "dryrun", "noop", "rules", "memory", "prediction", "training")
# The parts that use the data part's in-memory arrays (it runs when any of them is asked for).
NEED_ARRAYS = {"data", "postprocess", "memory", "prediction", "training"}
SECTIONS = {
    "data": "Data steps (package functions, in memory)",
    "postprocess": "Post-processing and scoring",
    "snakemake": "Snakemake's own overhead",
    "rules": "Each rule's runtime and peak RSS: the workflow at course size, one epoch per "
    "variant (its `benchmark:` files, one run)",
    "memory": "Peak memory of training and prediction at course size (one process each)",
    "prediction": "Prediction (predict_labels, untrained weights)",
    "training": "Training: the workflow's path (train_member) against a bare model.fit",
}
COLUMNS = ["section", "name", "variant", "size", "median", "min", "max", "unit", "repeats"]
COLUMNS += ["goal", "ok", "note"]
QUICK_SYNTHETIC = {"n_train": 96, "n_test": 64, "n_aliens": 4}
COURSE_SIZE = {"n_train": 2615, "n_test": 10022}  # the course's labelled and test images
QUICK_IMAGES = 64  # training and prediction images in --quick mode
CPU_IMAGES = 1024  # without an accelerator, the default cap on training and prediction images
# Environment variables the benchmark sets for its own process only (see main).
BENCHMARK_ONLY_SETTINGS: set[str] = set()
RSS_GOAL_MIB = 3072
NVIDIA_SMI_S = 30  # seconds machine_info waits for nvidia-smi
PROBE_TRAINING_STEPS = 4  # batches each memory probe trains (the peak comes with the first)
# Test images each memory probe predicts: four chunks of predict_labels (its memory settles by
# the second: a probe of one chunk of 256 read 1504 MiB where the rule's whole run peaked at
# 1631, two read 1650).
PROBE_PREDICT_IMAGES = 512
# Left by the rules part in its working directory: the mark of a directory it may empty.
RUN_MARKER = ".marsseg-bench-run"


# ---------------------------------------------------------------------------------------------
# Helpers: timing, rows, configuration


def timed(function, repeats: int, warmup: int = 0) -> list[float]:
    """Wall-clock seconds of `repeats` calls, after `warmup` calls that are not counted."""
    for _ in range(warmup):
        function()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds


def summary(section, name, values, unit, size="", variant="", goal="", note="") -> dict:
    """One result row: median, min and max of the values (seconds, images/second, ...)."""
    values = [float(v) for v in values]
    return {
        "section": section,
        "name": name,
        "variant": variant,
        "size": size,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "unit": unit,
        "repeats": len(values),
        "goal": goal,
        "ok": meets(statistics.median(values), goal),
        "note": note,
    }


def meets(value: float, goal: str) -> str:
    """'yes' or 'no' for a goal written '<= 2' or '>= 0.95'; '' without a goal."""
    if not goal:
        return ""
    op, bound = goal.split()
    ok = value <= float(bound) if op == "<=" else value >= float(bound)
    return "yes" if ok else "no"


def rates(n_images: int, seconds: list[float]) -> list[float]:
    return [n_images / s for s in seconds]


def _at_least(minimum: int):
    """An argparse type: a whole number, `minimum` or more."""

    def whole_number(text: str) -> int:
        if int(text) < minimum:
            raise argparse.ArgumentTypeError(f"{text} is less than {minimum}")
        return int(text)

    return whole_number


def load_config(path: str | Path) -> dict:
    """The study's config with the schema's defaults filled in, as the Snakefile sees it."""
    config = yaml.safe_load(Path(path).read_text())
    try:
        from snakemake.utils import validate
    except ImportError:  # e.g. a GPU machine without Snakemake: config.yaml lists every key
        return config
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def child_environment() -> dict[str, str]:
    """The environment of the processes the benchmark measures (Snakemake, memory probes): the
    user's, with the virtualenv's bin first on PATH, without the benchmark's own settings."""
    env = {k: v for k, v in os.environ.items() if k not in BENCHMARK_ONLY_SETTINGS}
    return {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}


def usable_cores() -> int:
    """The cores this process may run on (a batch system's or taskset's share), which may be
    fewer than the machine's (os.cpu_count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def snakemake(workdir: Path, *args: str) -> tuple[float, str]:
    """Run the Snakemake CLI on the repository's Snakefile in `workdir`: (seconds, output)."""
    env = child_environment()
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
    command += ["--directory", str(workdir), *args]
    start = time.perf_counter()
    # In a process group of its own, which a stopped benchmark stops: Snakemake and its jobs.
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with subprocess.Popen(
        command, cwd=workdir, env=env, text=True, start_new_session=True, **pipes
    ) as process:
        try:
            stdout, stderr = process.communicate()
        except BaseException:  # Ctrl-C, or SIGTERM (_exit_on_sigterm)
            with contextlib.suppress(ProcessLookupError):  # the group has ended already
                os.killpg(process.pid, signal.SIGTERM)
            raise
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed in {workdir}:\n{stderr[-4000:]}")
    return seconds, stdout + stderr


# ---------------------------------------------------------------------------------------------
# The machine


def machine_info() -> dict[str, str]:
    import keras

    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = names[0] if names else cpu
    memory = "?"
    if Path("/proc/meminfo").exists():
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f"{kib / 2**20:.1f} GiB"
    gpus = "none"
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"]
        try:
            result = subprocess.run(query, capture_output=True, text=True, timeout=NVIDIA_SMI_S)
            if result.returncode == 0:
                gpus = "; ".join(result.stdout.strip().splitlines()) or gpus
            else:
                gpus = (
                    f"nvidia-smi failed (exit {result.returncode}): {result.stdout.strip()[:120]}"
                )
        except subprocess.TimeoutExpired:  # it can hang where the driver is in a bad state
            gpus = f"nvidia-smi gave no answer in {NVIDIA_SMI_S} s"
    backend = keras.backend.backend()
    versions = [f"Python {platform.python_version()}", f"Keras {keras.__version__}"]
    if backend != "numpy":
        versions.append(f"{backend} {importlib.import_module(backend).__version__}")
    versions.append(f"numpy {np.__version__}")
    try:
        versions.append(f"snakemake {importlib.import_module('snakemake').__version__}")
    except ImportError:
        pass
    return {
        "CPU": f"{cpu}, {os.cpu_count()} logical cores ({usable_cores()} usable)",
        "memory": memory,
        "GPU (nvidia-smi)": gpus,
        "Keras backend": f"{backend}; accelerators seen: {', '.join(accelerators()) or 'none'}",
        "versions": ", ".join(versions),
        "OS": platform.platform(),
    }


# ---------------------------------------------------------------------------------------------
# Data steps, post-processing and scoring


def bench_data(config: dict, synthetic: dict, repeats: int, rows: list) -> dict:
    """Time the synthetic dataset, the outlier filter, the split and the augmentation; return
    the arrays (augmented training split, validation split, test images and masks)."""
    from marsseg.augment import augment
    from marsseg.outliers import find_outliers
    from marsseg.split import split_indices
    from marsseg.synthetic import generate_course_dataset

    section = SECTIONS["data"]
    made = {}

    def synthesize():
        made["raw"] = generate_course_dataset(
            synthetic["seed"], synthetic["n_train"], synthetic["n_test"], synthetic["n_aliens"]
        )

    seconds = timed(synthesize, repeats)
    size = f"{synthetic['n_train']} + {synthetic['n_test']} images"
    rows.append(
        summary(
            section,
            "synthetic dataset (generate_course_dataset)",
            seconds,
            "s",
            size,
            goal="<= 30",
            note="one thread",
        )
    )
    training_set, test_set, test_masks = made["raw"]
    images, masks = training_set[:, 0].astype(np.uint8), training_set[:, 1].astype(np.uint8)

    outliers = config["outliers"]

    def filter_outliers():
        keep, _ = find_outliers(masks, outliers["max_group_size"], outliers["drop_all_background"])
        made["filtered"] = images[keep], masks[keep]

    seconds = timed(filter_outliers, repeats)
    rows.append(summary(section, "outlier filter (find_outliers)", seconds, "s", f"{len(masks)}"))
    images, masks = made["filtered"]

    split = config["split"]

    def split_data():
        train, val = split_indices(
            masks, split["val_fraction"], split["seed"], split["stratify_on_big_rock"]
        )
        made["train"], made["val"] = (images[train], masks[train]), (images[val], masks[val])

    seconds = timed(split_data, repeats)
    rows.append(summary(section, "split (split_indices)", seconds, "s", f"{len(masks)}"))

    steps = config["augmentation"]["steps"]

    def augment_train():
        made["augmented"] = augment(*made["train"], steps, config["augmentation"]["seed"])

    seconds = timed(augment_train, repeats)
    names = " + ".join(step["name"] for step in steps)
    n_in, n_out = len(made["train"][0]), len(made["augmented"][0])
    # the goal is issue 3's, for flips x4 of about 2000 images
    goal = "<= 5" if names == "flips" else ""
    rows.append(
        summary(
            section, f"augmentation ({names})", seconds, "s", f"{n_in} -> {n_out} images", goal=goal
        )
    )
    return {
        "train_images": made["augmented"][0],
        "train_masks": made["augmented"][1],
        "val_images": made["val"][0],
        "val_masks": made["val"][1],
        "test_images": test_set.astype(np.uint8),
        "test_masks": test_masks,
    }


def bench_postprocess(config: dict, data: dict, repeats: int, rows: list) -> None:
    """Each post-processing method and the course metric on the test-size stack of masks (the
    synthetic hidden test masks stand in for predicted label maps)."""
    from marsseg.metrics import score
    from marsseg.postprocess import apply_method

    section = SECTIONS["postprocess"]
    labels = data["test_masks"]
    labels_no_background = np.maximum(labels, 1).astype(np.uint8)
    size = f"{len(labels)} masks"
    all_background_label = config["postprocessing"]["all_background_label"]
    for method in config["postprocessing"]["methods"]:
        run = functools.partial(
            apply_method, method, labels, labels_no_background, all_background_label
        )
        seconds = timed(run, repeats)
        rows.append(summary(section, f"apply_method {method}", seconds, "s", size, goal="<= 2"))
    predicted = np.roll(labels, 1, axis=2)  # not identical to the truth: a realistic confusion
    seconds = timed(functools.partial(score, labels, predicted), repeats)
    rows.append(summary(section, "score (metrics.score)", seconds, "s", size, goal="<= 1"))


# ---------------------------------------------------------------------------------------------
# Snakemake's overhead


def bench_dryrun(config_path: Path, repeats: int, rows: list) -> None:
    """`snakemake -n` on the config, in a fresh working directory (one untimed warm-up)."""
    with tempfile.TemporaryDirectory(prefix="marsseg-bench-") as tmp:
        workdir = Path(tmp)
        shutil.copy(config_path, workdir / "config.yaml")
        outputs = []
        seconds = timed(lambda: outputs.append(snakemake(workdir, "-n")[1]), repeats, warmup=1)
    jobs = re.search(r"^total\s+(\d+)", outputs[-1], re.M)
    note = f"{jobs.group(1) if jobs else '?'} jobs planned; 1 untimed warm-up"
    rows.append(
        summary(SECTIONS["snakemake"], "snakemake -n", seconds, "s", config_path.name, note=note)
    )


def bench_noop(config_path: Path, repeats: int, rows: list) -> None:
    """A rerun with everything up to date, on the config's whole DAG: every output Snakemake
    plans (`--summary`) is made an empty file and `--touch` records the jobs as done; then
    `snakemake` is timed finding nothing to do."""
    gpu = ("--resources", "gpu=1")
    with tempfile.TemporaryDirectory(prefix="marsseg-bench-") as tmp:
        workdir = Path(tmp)
        shutil.copy(config_path, workdir / "config.yaml")
        planned = snakemake(workdir, "--summary")[1].splitlines()
        outputs = [line.split("\t")[0] for line in planned if line.count("\t") >= 5][1:]
        for output in outputs:
            (workdir / output).parent.mkdir(parents=True, exist_ok=True)
            (workdir / output).touch()
        snakemake(workdir, "--touch", "--cores", "1", *gpu)
        reruns = []
        seconds = timed(lambda: reruns.append(snakemake(workdir, "--cores", "1", *gpu)[1]), repeats)
    if not all("Nothing to be done" in output for output in reruns):
        raise RuntimeError(f"the rerun was not a no-op:\n{reruns[-1][-3000:]}")
    note = f"{len(outputs)} outputs of the whole DAG up to date (made by --touch)"
    rows.append(
        summary(
            SECTIONS["snakemake"],
            "no-op rerun",
            seconds,
            "s",
            config_path.name,
            goal="<= 3",
            note=note,
        )
    )


# ---------------------------------------------------------------------------------------------
# Prediction and training (Keras APIs only)


def _batch_words(batch_size: int, per_pass: int) -> str:
    """'batch 32', or 'batch 32 in passes of 8' where a batch is trained in several passes."""
    if per_pass < batch_size:
        return f"batch {batch_size} in passes of {per_pass}"
    return f"batch {batch_size}"


def bench_memory(config, variants, data, rows, quick: bool) -> None:
    """Peak RSS of each variant's training and of each prediction (predicted_names: with its
    Big Rock helper, an ensemble with all its models) with course-size arrays, each in a fresh
    process (marsseg.memory_probe) that stops after a few batches: the peak is that of the
    arrays and the per-batch tensors, which a full run repeats."""
    from marsseg.io import save_arrays

    steps, images = (2, QUICK_IMAGES) if quick else (PROBE_TRAINING_STEPS, PROBE_PREDICT_IMAGES)
    section = SECTIONS["memory"]
    with tempfile.TemporaryDirectory(prefix="marsseg-bench-") as tmp:
        tmp = Path(tmp)
        files = {name: str(tmp / f"{name}.npz") for name in ("train", "val", "test")}
        save_arrays(files["train"], images=data["train_images"], masks=data["train_masks"])
        save_arrays(files["val"], images=data["val_images"], masks=data["val_masks"])
        save_arrays(files["test"], images=data["test_images"], masks=data["test_masks"])
        config_file = tmp / "config.yaml"
        config_file.write_text(yaml.safe_dump(config))
        images = min(images, len(data["test_images"]))
        probes = [("training", "train", v, files["train"], files["val"], steps) for v in variants]
        probes += [
            ("prediction", "predict", name, files["val"], files["test"], images)
            for name in predicted_names(config, variants)
        ]
        for rule, mode, name, first, second, number in probes:
            command = [sys.executable, "-m", "marsseg.memory_probe", mode, str(config_file)]
            command += [name, first, second, str(number)]
            done = subprocess.run(command, capture_output=True, text=True, env=child_environment())
            if done.returncode != 0:
                raise RuntimeError(f"memory probe {mode} {name} failed:\n{done.stderr}")
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            if mode == "train":
                batch = _batch_words(measured["batch_size"], measured["micro_batch_size"])
                size = f"{len(data['train_images'])} train images, {number} batches ({batch})"
            else:
                size = (
                    f"{len(data['test_images'])} test images, {number} predicted with TTA, "
                    f"label maps of all held ({measured['label_maps_mib']} MiB)"
                )
            rows.append(
                summary(
                    section,
                    f"peak RSS, {rule}",
                    [measured["peak_rss_mib"]],
                    "MiB",
                    size,
                    variant=name,
                    goal=f"<= {RSS_GOAL_MIB}",
                    note=f"one reading (a fresh process's peak; {measured['seconds']:.0f} s)",
                )
            )


def predicted_names(config: dict, variants: list[str]) -> list[str]:
    """What the prediction part predicts: the chosen variants that are not Big Rock helpers, and
    the ensembles whose variants are all chosen."""
    scored = [v for v in variants if v not in helper_variants(config)]
    ensembles = config["ensembles"].items()
    return scored + [name for name, parts in ensembles if set(parts) <= set(variants)]


def prediction_models(config: dict, name: str) -> tuple[list, list, dict]:
    """What the predict rule loads for `name`, untrained: the models of a variant (its members)
    or of an ensemble (its variants' members), those of its Big Rock helper, and predict_labels'
    other settings (the helper's threshold, each model's weight in the soft vote)."""
    from marsseg.models import build_model
    from marsseg.prediction import soft_vote_weights

    part_members = [resolve_members(config, p) for p in config["ensembles"].get(name, [name])]
    helper = big_rock_helper_of(config, name)
    helper_members = resolve_members(config, helper["variant"]) if helper else []
    models = [build_model(m["architecture"], m["params"]) for ms in part_members for m in ms]
    helpers = [build_model(m["architecture"], m["params"], num_classes=2) for m in helper_members]
    weights = soft_vote_weights([len(members) for members in part_members])
    return models, helpers, {"big_rock_threshold": helper.get("threshold", 0.5), "weights": weights}


def bench_prediction(config, names, data, n_images, repeats, rows) -> None:
    """predict_labels images/second of each predicted variant (all its members) or ensemble,
    with and without TTA; the first call on a slice with the same batch shapes is not counted."""
    import keras

    from marsseg.prediction import chunk_size, predict_labels

    batch_size = config["prediction"]["batch_size"]
    chunk = chunk_size(batch_size)  # predict_labels' chunks, as the rule's
    images = data["test_images"][:n_images]
    warm = images[: chunk + len(images) % chunk] if len(images) > chunk else images
    for name in names:
        main, helpers, settings = prediction_models(config, name)
        for tta in (False, True):
            run = functools.partial(
                predict_labels, main, images, batch_size, tta, helpers, **settings
            )
            warm_up = functools.partial(
                predict_labels, main, warm, batch_size, tta, helpers, **settings
            )
            warm_up()
            seconds = timed(run, repeats)
            label = "TTA (4 flips)" if tta else "no TTA"
            note = f"{len(main) + len(helpers)} model(s), batch {batch_size}"
            rows.append(
                summary(
                    SECTIONS["prediction"],
                    f"predict_labels, {label}",
                    rates(len(images), seconds),
                    "images/s",
                    f"{len(images)} test images",
                    variant=name,
                    note=note,
                )
            )
        del main, helpers
        keras.backend.clear_session()


def _epoch_timer():
    """A callback that times each epoch from its start to the end of its callbacks, in wall
    seconds (`spans`) and in CPU seconds of the whole process, all threads (`cpu_spans`). Last
    in the list, it runs after the workflow's validation, checkpoint and CSV callbacks, so an
    epoch's time is everything the user waits for in it. In the workflow's epochs it also
    keeps the time of the training steps alone (the logged epoch_seconds less
    validation_seconds)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.spans, self.cpu_spans, self.step_seconds = [], [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.began, self.cpu_began = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if "loss" in logs:
                float(logs["loss"])  # wait for the device to finish the epoch
            self.spans.append(time.perf_counter() - self.began)
            self.cpu_spans.append(time.process_time() - self.cpu_began)
            if "validation_seconds" in logs:
                self.step_seconds.append(logs["epoch_seconds"] - logs["validation_seconds"])

    return EpochTimer()


def _bare_fit(model, x, y, epochs, batch_size):
    """model.fit on in-memory arrays, with no callback but the epoch timer, which it returns."""
    timer = _epoch_timer()
    model.fit(
        x, y, epochs=epochs, batch_size=batch_size, shuffle=True, callbacks=[timer], verbose=0
    )
    return timer


def _bare_epoch_after_each(model, x, y, batch_size):
    """A callback that runs one bare epoch of `model` (already compiled and warmed up) after
    each of the workflow's epochs, so that the two are timed side by side, seconds apart: a
    change in the machine's speed weighs on both of a pair."""
    import keras

    class BareEpochAfterEach(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.spans, self.cpu_spans = [], []

        def on_epoch_end(self, epoch, logs=None):
            timer = _bare_fit(model, x, y, 1, batch_size)
            self.spans += timer.spans
            self.cpu_spans += timer.cpu_spans

    return BareEpochAfterEach()


def _workflow_fit(member, train_npz, val_npz, epochs, seed, workdir: Path, extra_callbacks=()):
    """The train rule's code path (train_member on the npz files, with every callback), timed
    per epoch: the epoch timer, which it returns."""
    from marsseg.training import train_member_in

    timer = _epoch_timer()
    settings = {**member, "training": {**member["training"], "epochs": epochs}}
    callbacks = (timer, *extra_callbacks)
    train_member_in(workdir, train_npz, val_npz, settings, seed, extra_callbacks=callbacks)
    return timer


def bench_training(config, variants, data, n_images, repeats, rows) -> None:
    """Per variant (its first member): images/second of train_member and of a bare model.fit
    over the same images, batch size and epochs, an epoch of each in turn; the first epoch of
    each fit (compilation, setting up the data) left out."""
    import keras

    from marsseg.io import save_arrays
    from marsseg.training import compiled_member, images_to_input, micro_batch_size

    section = SECTIONS["training"]
    n_train = min(n_images, len(data["train_images"]))
    # The validation split shrinks with the training split, so that the validation pass keeps
    # its course-size share of an epoch.
    share = len(data["val_images"]) / len(data["train_images"])
    n_val = max(1, round(n_train * share))
    train_images, train_masks = data["train_images"][:n_train], data["train_masks"][:n_train]
    with tempfile.TemporaryDirectory(prefix="marsseg-bench-") as tmp:
        tmp = Path(tmp)
        save_arrays(tmp / "train.npz", images=train_images, masks=train_masks)
        save_arrays(
            tmp / "val.npz", images=data["val_images"][:n_val], masks=data["val_masks"][:n_val]
        )
        x = images_to_input(train_images)
        for variant in variants:
            members = resolve_members(config, variant)
            member = members[0]
            seed = config["seeds"][0] + member["seed_offset"]
            per_pass = micro_batch_size(member["training"])
            model, y, *_ = compiled_member(member, train_masks, seed)
            _bare_fit(model, x, y, 1, per_pass)  # compiles the bare fit: untimed
            bare_epochs = _bare_epoch_after_each(model, x, y, per_pass)
            timer = _workflow_fit(
                member,
                tmp / "train.npz",
                tmp / "val.npz",
                1 + repeats,
                seed,
                tmp / variant,
                extra_callbacks=(bare_epochs,),
            )
            # The rule's first epoch compiles; it and the bare epoch beside it are left out.
            bare, workflow, steps = bare_epochs.spans[1:], timer.spans[1:], timer.step_seconds[1:]
            bare_cpu, workflow_cpu = bare_epochs.cpu_spans[1:], timer.cpu_spans[1:]
            del model
            keras.backend.clear_session()
            batch = _batch_words(member["training"]["batch_size"], per_pass)
            size = f"{n_train} train + {n_val} val images, {batch}"
            note = f"{repeats} epoch(s) after 1 untimed"
            if len(members) > 1:
                note += f"; member 0 of {len(members)}"
            for name, seconds, text in (
                ("bare model.fit", bare, f"{note}, each right after one of the rule's"),
                ("train_member (the rule)", workflow, note),
            ):
                rate = rates(n_train, seconds)
                rows.append(summary(section, name, rate, "images/s", size, variant, note=text))
            # The goal is the wall-time ratio's; the CPU-time ratio (a CPU only: a GPU's work is
            # not the process's CPU time) and the within-epoch share below explain it.
            ratios = [("ratio train_member / bare", bare, workflow, "wall time", ">= 0.95")]
            if not accelerators():
                ratios.append(
                    (
                        "ratio train_member / bare, CPU time",
                        bare_cpu,
                        workflow_cpu,
                        "CPU seconds of the process (all threads): the work per image, "
                        "whatever share of the cores the machine gives it at the time",
                        "",
                    )
                )
            for name, bare_seconds, workflow_seconds, text, goal in ratios:
                overhead = statistics.median(
                    w - b for b, w in zip(bare_seconds, workflow_seconds, strict=True)
                )
                rows.append(
                    summary(
                        section,
                        name,
                        [b / w for b, w in zip(bare_seconds, workflow_seconds, strict=True)],
                        "",
                        size,
                        variant=variant,
                        goal=goal,
                        note=(
                            f"per pair of epochs run one after the other, {text}; train_member "
                            f"takes {overhead:+.2f} s more per epoch (median of the pairs)"
                        ),
                    )
                )
            # The same question asked inside the rule's own epochs: the share of an epoch
            # that the training steps take, the rest being validation, checkpoint and history.
            rows.append(
                summary(
                    section,
                    "share of the rule's epochs in training steps",
                    [step / epoch for step, epoch in zip(steps, workflow, strict=True)],
                    "",
                    size,
                    variant=variant,
                    note="training steps / whole epoch (validation pass, checkpoint, history)",
                )
            )


# ---------------------------------------------------------------------------------------------
# Output


def _fmt(value) -> str:
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def _table(header: list[str], lines: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(v).replace("|", "/") for v in line) + " |" for line in lines]
    return out


def write_results(rows, machine, settings, out_dir: Path, stem: str = "benchmark") -> None:
    """benchmark.csv (one row per measurement) and benchmark.md (one table per section): both
    made first, then each written whole (atomic_path), so that a failure leaves the two files
    of the last save."""
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    text = ["# Benchmark", ""]
    text += _table(["setting", "value"], [[k, v] for k, v in settings.items()]) + [""]
    text += ["## Machine", ""]
    text += _table(["", ""], [[k, v] for k, v in machine.items()]) + [""]
    header = ["what", "variant", "size", "median", "min", "max", "unit", "n", "goal", "ok", "note"]
    for section in dict.fromkeys(row["section"] for row in rows):
        lines = [[row[key] for key in COLUMNS[1:]] for row in rows if row["section"] == section]
        text += [f"## {section}", ""] + _table(header, lines) + [""]
    with atomic_path(out_dir / f"{stem}.csv") as path:
        path.write_text(table.getvalue(), newline="")
    with atomic_path(out_dir / f"{stem}.md") as path:
        path.write_text("\n".join(text))


# ---------------------------------------------------------------------------------------------
# The workflow itself at course size: each rule's runtime and peak RSS


def course_config(
    config: dict, synthetic: dict, cpu_only: bool, variants: list[str] | None
) -> dict:
    """The config of the rules part's run: `config` (as read from its file) on the benchmark's
    synthetic data (`synthetic`: its sizes), with one epoch for every variant, run_variants set
    to `variants` if given, and without an accelerator only the first of them, at a quarter of
    its filters."""
    config = copy.deepcopy(config)
    config["raw_data"] = "synthetic"
    config["synthetic"] = dict(synthetic)
    config["training"]["epochs"] = 1
    for variant in config["variants"].values():
        for settings in [variant, *variant.get("members", [])]:
            if "epochs" in settings.get("training", {}):
                settings["training"]["epochs"] = 1
    if variants:
        config["run_variants"] = list(variants)
    if cpu_only:
        # A CPU needs hours per variant at course size: the first variant only, with a quarter
        # of its filters. Every rule still runs on course-size data; the memory part gives
        # each variant's own training and prediction peak.
        first = (config.get("run_variants") or list(config["variants"]))[0]
        config["run_variants"] = [first]
        params = config["variants"].get(first, {}).get("params", {})
        for key, filters in params.items():
            if key.startswith("filters"):  # filters, filters_a, filters_b
                params[key] = [max(4, f // 4) for f in filters]
    return config


def check_workdir(workdir: Path) -> None:
    """The rules part empties its working directory first: refuse one that holds files and
    that no earlier run of it made (it leaves RUN_MARKER there)."""
    if workdir.is_dir() and any(workdir.iterdir()) and not (workdir / RUN_MARKER).exists():
        raise ValueError(
            f"{workdir} holds files that no run of the benchmark made, and the rules part "
            f"empties its working directory first (it recognises its own by {RUN_MARKER}). "
            "Fix: name another --workdir, or remove that directory yourself."
        )


def course_run(config: dict, workdir: Path) -> float:
    """Run the workflow with `config` in `workdir` (emptied first: check_workdir); return its
    wall time."""
    check_workdir(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / RUN_MARKER).touch()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    seconds, _ = snakemake(workdir, "--cores", str(usable_cores()), "--resources", "gpu=1")
    return seconds


def rule_benchmarks(workdir: Path) -> tuple[list[dict], list[str]]:
    """One record per `benchmark:` file of a run in `workdir` (runtime, peak RSS), and the rules
    that logged but wrote no benchmark file. Every rule's benchmark and log paths start with the
    rule's name. A job Snakemake took no memory sample of (NA) gets no peak and no verdict."""
    records = []
    for tsv in sorted((workdir / "benchmarks").rglob("*.tsv")):
        with open(tsv, newline="") as handle:
            measured = next(csv.DictReader(handle, delimiter="\t"))
        job = tsv.relative_to(workdir / "benchmarks").with_suffix("").as_posix()
        sampled = measured["max_rss"] not in ("", "NA", "-")
        rss = float(measured["max_rss"]) if sampled else "n/a"
        records.append(
            {
                "job": job,
                "rule": job.split("/")[0],
                "seconds": float(measured["s"]),
                "max_rss_mib": rss,
                "cpu_time_s": measured.get("cpu_time", ""),
                "ok": ("yes" if rss <= RSS_GOAL_MIB else "no") if sampled else "",
            }
        )
    logged = {
        p.relative_to(workdir / "logs").parts[0].removesuffix(".log")
        for p in (workdir / "logs").rglob("*.log")
    }
    return records, sorted(logged - {record["rule"] for record in records})


def rule_rows(records: list[dict], missing: list[str], seconds: float, size: str) -> list[dict]:
    """The rows of the `rules` section: one per job (its peak RSS, judged against the goal; its
    runtime and CPU time in the note), and one for the whole run."""
    section = SECTIONS["rules"]
    rows = []
    for record in records:
        rss = record["max_rss_mib"]
        note = f"runtime {_fmt(record['seconds'])} s, CPU time {record['cpu_time_s']} s"
        if rss == "n/a":
            note += "; no memory sample (the job ended before Snakemake took one)"
        rows.append(
            {
                "section": section,
                "name": f"peak RSS, {record['job']}",
                "variant": "",
                "size": size,
                "median": rss,
                "min": rss,
                "max": rss,
                "unit": "MiB",
                "repeats": 1 if rss != "n/a" else 0,
                "goal": f"<= {RSS_GOAL_MIB}",
                "ok": record["ok"],
                "note": note,
            }
        )
    note = (
        "Snakemake samples memory every 0.5 s for about a job's first 15 s, then every 30 s: a "
        "job done in well under a second shows almost none, and a short peak in a long one can "
        "be missed"
    )
    if missing:
        note += f". Rules without a `benchmark:` file (not measured): {', '.join(missing)}"
    rows.append(summary(section, "whole workflow run", [seconds], "s", size, note=note))
    return rows


def bench_rules(config_path, workdir: Path, variants, synthetic: dict, rows, settings) -> None:
    """Run the workflow on synthetic data of `synthetic`'s sizes (course size but with --quick)
    in `workdir` and add its rules' benchmark rows."""
    cpu_only = not accelerators()
    config = yaml.safe_load(Path(config_path).read_text())
    config = course_config(config, synthetic, cpu_only, variants)
    seconds = course_run(config, workdir.resolve())
    records, missing = rule_benchmarks(workdir.resolve())
    ran = config.get("run_variants")
    settings["rules: working directory"] = str(workdir)
    settings["rules: variants"] = ", ".join(ran) if ran else "all of the config's"
    if cpu_only:
        settings["rules: variants"] += " (no accelerator: the first only, a quarter of its filters)"
    size = f"{synthetic['n_train']} + {synthetic['n_test']} images, 1 epoch"
    rows.extend(rule_rows(records, missing, seconds, size))


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, 1 repeat (unless --repeats): a smoke run"
    )
    parser.add_argument(
        "--repeats",
        type=_at_least(1),
        help="timed repeats (training: epochs); default 3, 1 with --quick",
    )
    parser.add_argument("--out-dir", default="results", type=Path)
    parser.add_argument("--config", default=str(REPO / "config.yaml"), type=Path)
    parser.add_argument(
        "--variants",
        help="comma-separated variants (default: all in config; the prediction part also "
        "predicts each ensemble whose variants are all among them)",
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated, of {PARTS} (data also runs for the parts that use its arrays: "
        f"{sorted(NEED_ARRAYS - {'data'})})",
    )
    parser.add_argument(
        "--train-images",
        type=_at_least(0),
        help=f"training images per epoch (0: all; default all with an accelerator, "
        f"{CPU_IMAGES} on a CPU); the validation split shrinks in proportion",
    )
    parser.add_argument(
        "--predict-images",
        type=_at_least(0),
        help=f"test images to predict (0: all; default all with an accelerator, {CPU_IMAGES} on a CPU)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="the rules part's workflow run directory (<out-dir>/bench_run)"
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    parts = [part.strip() for part in args.parts.split(",")]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}; use {PARTS}")
    workdir = args.workdir or args.out_dir / "bench_run"
    if "rules" in parts:
        try:
            check_workdir(workdir)
        except ValueError as error:
            parser.error(str(error))
    config = load_config(args.config)
    synthetic = dict(config["synthetic"])
    if args.quick:
        synthetic.update(QUICK_SYNTHETIC)
    variants = list(config["variants"])
    if args.variants:
        variants = [name.strip() for name in args.variants.split(",")]
        unknown = [name for name in variants if name not in config["variants"]]
        if unknown:
            parser.error(
                f"--variants: unknown variant(s) {unknown}; the config's: "
                f"{', '.join(config['variants'])}"
            )
    # The goals are for course size: judged only there (not with --quick, nor another config's).
    course_size = all(synthetic[key] == n for key, n in COURSE_SIZE.items())
    if args.quick:
        mode = "quick (small sizes; goals are for course size, so not judged)"
    elif course_size:
        mode = "full"
    else:
        mode = (
            f"full, at the config's size ({synthetic['n_train']} + {synthetic['n_test']} "
            f"images; course size is {COURSE_SIZE['n_train']} + {COURSE_SIZE['n_test']}): "
            "goals not judged"
        )
    started = time.perf_counter()
    load_at_start = f"{os.getloadavg()[0]:.2f}"
    settings = {
        "command": "python -m marsseg.benchmark "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "config": str(args.config),
        "mode": mode,
        # Both files are written after each part: until the last, the parts done so far.
        "status": "incomplete: a run in progress, or one that stopped (the parts below are done)",
    }

    # JAX would otherwise reserve most of a GPU's memory the first time this process asks which
    # devices there are, leaving little to the memory probes and the course run's jobs (which
    # run with the user's own setting: child_environment).
    if "XLA_PYTHON_CLIENT_PREALLOCATE" not in os.environ:
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        BENCHMARK_ONLY_SETTINGS.add("XLA_PYTHON_CLIENT_PREALLOCATE")
    if set(parts) - {"rules"}:  # the rules part is one run of the workflow
        settings["repeats"] = f"{repeats} (training: epochs after a first, untimed one)"
    rows: list[dict] = []
    machine: dict[str, str] = {}

    def save(finished: bool = False):
        settings["wall time"] = f"{time.perf_counter() - started:.0f} s"
        if finished:
            settings["status"] = "complete"
        if not course_size:
            for row in rows:
                row["ok"] = ""
        write_results(rows, machine, settings, args.out_dir)

    # Data and Snakemake first: no Keras device is in use yet (JAX reserves GPU memory).
    data = {}
    if NEED_ARRAYS & set(parts):
        data = bench_data(config, synthetic, repeats, rows)
        save()
    if "postprocess" in parts:
        bench_postprocess(config, data, repeats, rows)
        save()
    if "dryrun" in parts:
        bench_dryrun(args.config, repeats, rows)
        save()
    if "noop" in parts:
        bench_noop(args.config, repeats, rows)
        save()
    if "rules" in parts:
        chosen = variants if args.variants else None
        bench_rules(args.config, workdir, chosen, synthetic, rows, settings)
        save()
    if "memory" in parts:
        bench_memory(config, variants, data, rows, args.quick)
        save()
    if "prediction" in parts or "training" in parts:
        from marsseg.training import setup_backend

        setup_backend(0)  # seeds, before any model exists
    machine.update(machine_info())
    default_images = QUICK_IMAGES if args.quick else (0 if accelerators() else CPU_IMAGES)
    if "prediction" in parts:
        n = default_images if args.predict_images is None else args.predict_images
        n = n or len(data["test_images"])
        settings["images predicted"] = (
            f"{min(n, len(data['test_images']))} of {len(data['test_images'])}"
        )
        bench_prediction(config, predicted_names(config, variants), data, n, repeats, rows)
        save()
    if "training" in parts:
        n = default_images if args.train_images is None else args.train_images
        n = n or len(data["train_images"])
        settings["training images per epoch"] = (
            f"{min(n, len(data['train_images']))} of {len(data['train_images'])}"
        )
        bench_training(config, variants, data, n, repeats, rows)
    machine["load average (1 min) at start, end"] = f"{load_at_start}, {os.getloadavg()[0]:.2f}"
    save(finished=True)
    print(f"wrote {args.out_dir / 'benchmark.md'} and {args.out_dir / 'benchmark.csv'}")


def _exit_on_sigterm(signum, frame):
    """Python's default for SIGTERM (kill, a batch system's time limit) ends the process on the
    spot: the temporary directories would stay, and a Snakemake run would go on."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    main()
