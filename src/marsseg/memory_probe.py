"""Peak memory of one variant's training and prediction at course size, each in a fresh process,
for the benchmark (`python -m marsseg.benchmark`, part `memory`):

    python -m marsseg.memory_probe train CONFIG VARIANT TRAIN_NPZ VAL_NPZ STEPS
    python -m marsseg.memory_probe predict CONFIG NAME VAL_NPZ TEST_NPZ IMAGES

`train` does what the train rule does for the variant's first member (course-size training and
validation arrays in memory, the model compiled as train_member compiles it, in its passes of
micro_batch_size images) but stops after STEPS batches and one validation pass (the
validation_scores of each of the rule's epochs); `predict` loads the models (of a variant or an
ensemble, with its Big Rock helper) and the validation and test images as the predict rule does
and, while it holds label maps of the size the rule's for all validation and test images take,
runs predict_labels with TTA on the first IMAGES test images
(the rule predicts a chunk of 128 at a time, and its memory settles by the second chunk, so
512 reach its peak). Either prints one JSON line: peak RSS (MiB) and seconds (`train`: its batch and
micro_batch_size). A CPU cannot train or predict every variant at course size in a benchmark's
time; the peak of these shortened runs is the rule's, as the arrays and the per-batch tensors
are the same (checked against the rules' own peaks, README: Benchmark).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: on Linux the high-water mark of its own
    address space (VmHWM). Not getrusage's ru_maxrss there: a process started by fork and exec
    reports in it at least the resident memory its parent had when it forked (the benchmark's
    own course-size arrays and TensorFlow, about 2.4 GB), whatever its own peak."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, else KiB


def probe_training(config: dict, variant: str, train_npz: str, val_npz: str, steps: int) -> dict:
    from marsseg.batches import training_batches
    from marsseg.io import load_arrays
    from marsseg.training import (
        compiled_member,
        images_to_input,
        micro_batch_size,
        validation_scores,
    )
    from marsseg.variants import resolve_members

    member = resolve_members(config, variant)[0]
    train, val = load_arrays(train_npz), load_arrays(val_npz)
    val_x = images_to_input(val["images"])
    model, y, _, loss_fn, _ = compiled_member(member, train["masks"], seed=0)
    batch_size, per_pass = member["training"]["batch_size"], micro_batch_size(member["training"])
    batches = training_batches(train["images"], y, per_pass, seed=0)
    steps_per_epoch = steps * batch_size // per_pass
    model.fit(batches, epochs=1, steps_per_epoch=steps_per_epoch, shuffle=False, verbose=0)
    validation_scores(model, val_x, val["masks"], loss_fn, per_pass, member["target"])
    return {"batch_size": batch_size, "micro_batch_size": per_pass}


def probe_prediction(config: dict, name: str, val_npz: str, test_npz: str, images: int) -> dict:
    from marsseg.benchmark import prediction_models
    from marsseg.io import load_arrays
    from marsseg.prediction import predict_labels
    from marsseg.training import setup_backend

    setup_backend(0)
    models, helpers, settings = prediction_models(config, name)
    val_images = load_arrays(val_npz)["images"]
    test_images = load_arrays(test_npz)["images"]
    batch_size = config["prediction"]["batch_size"]
    # The rule fills the label maps of every validation and test image as it goes, and holds
    # them while it predicts its last test images: the maps first (one image tells which),
    # then the chunk.
    kinds = predict_labels(models, test_images[:1], batch_size, tta=True)
    held = [np.ones(split.shape, np.uint8) for split in (val_images, test_images) for _ in kinds]
    predict_labels(models, test_images[:images], batch_size, True, helpers, **settings)
    return {"label_maps_mib": round(sum(a.nbytes for a in held) / 2**20)}


def main(argv: list[str]) -> None:
    import yaml

    mode, config_path, variant, first, second, number = argv
    config = yaml.safe_load(open(config_path))
    started = time.perf_counter()
    if mode == "train":
        settings = probe_training(config, variant, first, second, int(number))
    elif mode == "predict":
        settings = probe_prediction(config, variant, first, second, int(number))
    else:
        raise SystemExit(f"mode is {mode!r}; use train or predict")
    seconds = time.perf_counter() - started
    measured = {"peak_rss_mib": round(peak_rss_mib()), "seconds": round(seconds, 1)}
    print(json.dumps({**measured, **settings}))


if __name__ == "__main__":
    main(sys.argv[1:])
