"""A training job killed mid-run (SIGKILL) and started again resumes from its last completed epoch
and ends with the configured number of epochs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from marsseg.checkpoint import epochs_completed
from marsseg.io import save_arrays

pytestmark = pytest.mark.slow

EPOCHS = 4
TRAIN = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True)
from marsseg.training import train_member
train_member(
    train_npz="{d}/train.npz", val_npz="{d}/val.npz", model_out="{d}/model.keras",
    history_out="{d}/history.csv", info_out="{d}/info.json", checkpoint_dir="{d}/checkpoint",
    architecture="unet", params={{"filters": [8, 16], "dilation_rates": [1, 2]}},
    loss={{"name": "focal", "gamma": 2.0, "class_weights": [0, 1, 1, 1, 5]}},
    training={{"epochs": {epochs}, "batch_size": 8, "learning_rate": 0.001, "weight_decay": 0.001,
              "reduce_lr_patience": 10, "early_stopping_patience": 10}},
    seed=3,
)
"""


def start_training(directory):
    code = TRAIN.format(d=directory, epochs=EPOCHS)
    log = open(directory / "train.log", "a")
    return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)


def test_killed_training_resumes_from_its_last_epoch(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in (("train", 96), ("val", 16)):
        masks = rng.integers(0, 5, (n, 64, 128), dtype=np.uint8)
        save_arrays(tmp_path / f"{name}.npz", images=(masks * 50).astype(np.uint8), masks=masks)
    checkpoint = tmp_path / "checkpoint" / "checkpoint.npz"

    process = start_training(tmp_path)
    deadline = time.monotonic() + 240
    while epochs_completed(checkpoint) < 1:
        assert process.poll() is None, (tmp_path / "train.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no epoch completed in time"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "model.keras").exists()
    killed_at = epochs_completed(checkpoint)
    assert 1 <= killed_at < EPOCHS

    process = start_training(tmp_path)
    assert process.wait(timeout=240) == 0, (tmp_path / "train.log").read_text()[-3000:]
    log = (tmp_path / "train.log").read_text()
    assert f"Resuming from epoch {killed_at}" in log
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["resumed_from_epoch"] == killed_at and info["epochs_run"] == EPOCHS
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == [str(e) for e in range(EPOCHS)]
    # The training time counts the epochs before the kill too.
    column = history[0].split(",").index("epoch_seconds")
    epoch_seconds = [float(line.split(",")[column]) for line in history[1:]]
    assert info["train_seconds"] == pytest.approx(sum(epoch_seconds), abs=0.01)
    assert not (tmp_path / "checkpoint").exists()  # cleaned up after a successful run
