"""Training one member of a variant: seeds, device set-up, the course-exact validation metric,
early stopping on it, and resumption from the last completed epoch after an interruption."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from marsseg import BIG_ROCK
from marsseg.batches import images_to_input, predict_in_batches, training_batches
from marsseg.checkpoint import (
    checkpoint_callback,
    restore_checkpoint,
    saved_fingerprint,
    stopped_early,
)
from marsseg.io import atomic_path, load_arrays, save_json
from marsseg.metrics import confusion_matrix, mean_iou, per_class_iou
from marsseg.variants import num_classes_for

log = logging.getLogger(__name__)

# Images per forward/backward pass on a CPU when `micro_batch_size` is "auto": there the layers'
# activations live in host memory, and 8 keeps every variant's training job under 2.7 GB at
# course size (the multipath UNet's batch of 128 in one pass needs 11 GB).
CPU_MICRO_BATCH_SIZE = 8


def setup_backend(seed: int, deterministic: bool = False, mixed_precision: bool = False) -> str:
    """Seed everything and return the device in words. (GPU memory growth: importing marsseg
    sets TF_FORCE_GPU_ALLOW_GROWTH.)"""
    import keras

    backend = keras.backend.backend()
    device = "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        device = f"{len(gpus)} GPU(s)" if gpus else "cpu"
    keras.utils.set_random_seed(seed)
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    return f"backend {backend} {keras.__version__} on {device}"


def accelerators() -> list[str]:
    """The GPUs (or TPUs) Keras' backend sees: TensorFlow's without starting its runtime;
    JAX's through Keras. Other backends count as CPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_physical_devices("GPU")]
    if backend == "jax":  # the default device type: accelerators if any, else the CPU
        return [d for d in keras.distribution.list_devices() if not d.startswith("cpu")]
    return []


def micro_batch_size(training: dict) -> int:
    """Images per forward/backward pass: the whole `batch_size`, or with `micro_batch_size` a
    part of it (gradients averaged over batch_size / micro_batch_size passes before each update;
    batch normalisation sees one pass at a time). "auto": the whole batch when Keras sees a
    GPU; on a CPU the largest divisor of the batch size up to CPU_MICRO_BATCH_SIZE. A size
    that does not divide the batch size is refused when the config is read (resolve_members)."""
    batch_size = training["batch_size"]
    setting = training.get("micro_batch_size", "auto")
    if setting == "auto":
        if accelerators():
            return batch_size
        return max(n for n in range(1, CPU_MICRO_BATCH_SIZE + 1) if batch_size % n == 0)
    return min(setting or batch_size, batch_size)


def targets_for(masks: np.ndarray, target: str) -> np.ndarray:
    """Sparse targets: the masks themselves, or 1 where Big Rock for the binary helper."""
    if target == "big_rock":
        return (masks == BIG_ROCK).astype(np.uint8)
    return masks


def class_weights_for(loss_cfg: dict, train_masks: np.ndarray, num_classes: int) -> dict:
    """Resolve `class_weights: inverse_frequency` into numbers computed from the training split."""
    from marsseg.models import inverse_frequency_weights

    loss_cfg = dict(loss_cfg)
    if loss_cfg.get("class_weights") == "inverse_frequency":
        weights = inverse_frequency_weights(
            train_masks,
            num_classes=num_classes,
            # Background (class 0) is unscored and weighted 0 by default; for the binary Big
            # Rock helper class 0 is "not Big Rock" and keeps its computed weight.
            background_weight=loss_cfg.pop("background_weight", None if num_classes == 2 else 0.0),
            max_weight=loss_cfg.pop("max_weight", None),
        )
        loss_cfg["class_weights"] = [float(w) for w in weights]
    if "components" in loss_cfg:
        loss_cfg["components"] = [
            class_weights_for(component, train_masks, num_classes)
            for component in loss_cfg["components"]
        ]
    return loss_cfg


def jit_compile_for(backend: str, training: dict) -> bool | str:
    """Keras' `jit_compile` for a training config: its `xla` setting, which on TensorFlow
    chooses between XLA and TensorFlow's own graph for the compiled steps. JAX has no compiled
    path but XLA: there `jit_compile=False` runs every layer op by op from Python (1.3 s per
    step of 32 images on an H100), so JAX always compiles."""
    if backend == "jax":
        return True
    return training.get("xla", "auto")


def compiled_model(architecture: str, params: dict, loss_fn, training: dict, num_classes: int):
    """The architecture, built and compiled with the workflow's optimizer and settings (the
    benchmark compiles its bare `model.fit` baseline with this too). Fit it with
    `micro_batch_size(training)` images per step: the optimizer updates the weights once per
    `batch_size` images."""
    import keras

    from marsseg.models import build_model

    model = build_model(architecture, params, num_classes=num_classes)
    # BatchNormalization's moving statistics trail the weights by about 1/(1 - momentum) steps;
    # in short runs with a high learning rate Keras' 0.99 leaves them far behind, and inference
    # (validation, prediction) suffers. A lower momentum keeps them current. A batch trained in
    # several passes updates them once per pass: momentum ** (1 / passes) keeps their horizon
    # the same number of images.
    passes = training["batch_size"] // micro_batch_size(training)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            momentum = training.get("batch_norm_momentum") or layer.momentum
            layer.momentum = momentum ** (1 / passes)
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=training["learning_rate"],
            weight_decay=training["weight_decay"],
            clipnorm=training.get("clipnorm"),
            gradient_accumulation_steps=passes if passes > 1 else None,
        ),
        loss=loss_fn,
        jit_compile=jit_compile_for(keras.backend.backend(), training),
    )
    return model


def compiled_member(member: dict, train_masks: np.ndarray, seed: int):
    """A member as resolve_members gives it (architecture, params, loss, training, target),
    seeded and compiled as train_member trains it (the benchmark's bare fit and the memory probe
    build theirs with this too): the model, its training targets, the loss config with its class
    weights resolved, the loss function, and the device in words."""
    from marsseg.models.losses import make_loss

    training, target = member["training"], member["target"]
    device = setup_backend(
        seed, training.get("deterministic", False), training.get("mixed_precision", False)
    )
    num_classes = num_classes_for(target)
    train_y = targets_for(train_masks, target)
    loss = class_weights_for(member["loss"], train_y, num_classes)
    loss_fn = make_loss(loss, num_classes=num_classes)
    model = compiled_model(member["architecture"], member["params"], loss_fn, training, num_classes)
    return model, train_y, loss, loss_fn, device


def validation_scores(model, val_x, val_masks, loss_fn, batch_size: int, target: str = "classes"):
    """`val_loss` and `val_miou` of one prediction pass over the validation set (`val_masks`:
    its labels 0-4). The loss, on the model's `target`s, is the mean of its value on each pass
    of `batch_size` images, weighted by their number, as Keras' own val_loss (over the whole set
    at once, its intermediate tensors took 0.5 GB more at course size); the mIoU is course-exact
    over classes 1-4 (for the binary Big Rock helper, the course's IoU of Big Rock: its Big Rock
    pixels against the labelled ones, pixels labelled background unscored)."""
    import keras

    val_y = targets_for(val_masks, target)
    probabilities = predict_in_batches(model, val_x, batch_size)
    loss_sum = 0.0
    for start in range(0, len(val_y), batch_size):
        stop = start + batch_size
        loss = loss_fn(val_y[start:stop], probabilities[start:stop])
        loss_sum += float(keras.ops.convert_to_numpy(loss)) * len(val_y[start:stop])
    predicted = np.argmax(probabilities, axis=-1)
    if target == "big_rock":  # Big Rock or not (0, never Big Rock's IoU)
        confusion = confusion_matrix(val_masks, np.where(predicted == 1, BIG_ROCK, 0))
        miou = per_class_iou(confusion)[BIG_ROCK]
    else:
        miou = mean_iou(confusion_matrix(val_masks, predicted))
    return loss_sum / len(val_y), float(np.nan_to_num(miou))


def _validation_callback(val_x, val_masks, loss_fn, batch_size: int, target: str):
    """One validation pass per epoch (validation_scores) gives `val_loss` and `val_miou`."""
    import keras

    class Validation(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            validation_started = time.perf_counter()
            logs["val_loss"], logs["val_miou"] = validation_scores(
                self.model, val_x, val_masks, loss_fn, batch_size, target
            )
            now = time.perf_counter()
            logs["epoch_seconds"] = now - self.started  # training + validation
            logs["validation_seconds"] = now - validation_started
            log.info(
                "epoch %d: loss %.4f val_loss %.4f val_miou %.4f",
                epoch + 1,
                logs.get("loss", float("nan")),
                logs["val_loss"],
                logs["val_miou"],
            )

    return Validation()


def _read_history(path: Path) -> list[dict]:
    """Rows of Keras' CSV history, keeping the last row of an epoch that ran twice (resume)."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        rows = {int(row["epoch"]): row for row in csv.DictReader(handle)}
    return [rows[epoch] for epoch in sorted(rows)]


def score_callbacks(reduce_lr_patience: int, early_stopping_patience: int):
    """The two callbacks that watch the validation mIoU across epochs, and whose state a resumed
    run carries: ReduceLROnPlateau halves the learning rate after `reduce_lr_patience` epochs
    without a better score, EarlyStopping stops after `early_stopping_patience` and restores
    the best weights."""
    import keras

    reduce_lr = keras.callbacks.ReduceLROnPlateau(
        monitor="val_miou", mode="max", factor=0.5, patience=reduce_lr_patience, min_lr=1e-6
    )
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_miou", mode="max", patience=early_stopping_patience, restore_best_weights=True
    )
    return reduce_lr, early_stopping


# Part of every fingerprint: raised when what an epoch logs changes, so that no run resumes a
# checkpoint, and appends to a history, of the old kind. 2: the history's learning_rate column,
# the Big Rock helper's val_miou the course IoU of Big Rock.
CHECKPOINT_FORMAT = 2


def training_fingerprint(train_npz: str, val_npz: str, member: dict, seed: int) -> str:
    """What a checkpoint must have been written by to be resumed: a sha256 over everything that
    decides the training's result, the member's settings as resolve_members gives them
    (architecture, params, loss, training, target), the seed, the images per pass that
    `micro_batch_size: auto` comes to on this machine, and the bytes of the training and
    validation npz (about 0.1 s for the course's 131 + 8 MB on a 2-core CPU; train_member has
    just read them). Output paths are not in it."""
    settings = {**member, "seed": seed, "images_per_pass": micro_batch_size(member["training"])}
    settings["format"] = CHECKPOINT_FORMAT
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in (train_npz, val_npz):
        with open(path, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def resume(checkpoint_dir: Path, fingerprint: str, model) -> int:
    """Restore `model` from the checkpoint in `checkpoint_dir` if the same training (the same
    `training_fingerprint`) wrote it, and return the epochs it holds. Otherwise (no checkpoint,
    or one of other settings or data, or from before checkpoints kept their fingerprint) remove
    the directory and return 0: training starts afresh."""
    checkpoint = checkpoint_dir / "checkpoint.npz"
    if checkpoint.exists():
        if saved_fingerprint(checkpoint) == fingerprint:
            resumed_from = restore_checkpoint(checkpoint, model)
            log.info("Resuming from epoch %d (checkpoint in %s)", resumed_from, checkpoint_dir)
            return resumed_from
        log.warning(
            "The checkpoint in %s belongs to different settings or data: training starts afresh",
            checkpoint_dir,
        )
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return 0


def train_member(
    train_npz: str,
    val_npz: str,
    model_out: str,
    history_out: str,
    info_out: str,
    checkpoint_dir: str,
    architecture: str,
    params: dict,
    loss: dict,
    training: dict,
    seed: int,
    target: str = "classes",
    extra_callbacks: tuple = (),
) -> dict:
    """Train one model and write it, its per-epoch history (CSV) and a small info JSON.

    Checkpoints live in `checkpoint_dir`, outside the declared outputs, so that a job killed
    mid-training and started again resumes from its last completed epoch, if it was started with
    the same settings and data (`training_fingerprint`). `extra_callbacks` run after the
    workflow's own (the benchmark's epoch timer uses this).
    """
    import keras

    from marsseg.models import describe

    train, val = load_arrays(train_npz), load_arrays(val_npz)
    member = {
        "architecture": architecture,
        "params": params,
        "loss": loss,
        "training": training,
        "target": target,
    }
    # Before compiled_member, which resolves the loss's class weights.
    fingerprint = training_fingerprint(train_npz, val_npz, member, seed)
    model, train_y, loss, loss_fn, device = compiled_member(member, train["masks"], seed)
    log.info(
        "training %s (%s) seed %d: %s", architecture, describe(architecture, params), seed, device
    )
    val_x = images_to_input(val["images"])
    log.info("%d training and %d validation images; loss %s", len(train_y), len(val_x), loss)

    checkpoint_dir = Path(checkpoint_dir)
    history_csv = checkpoint_dir / "history.csv"
    checkpoint = checkpoint_dir / "checkpoint.npz"
    resumed_from = resume(checkpoint_dir, fingerprint, model)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    epochs = training["epochs"]
    if stopped_early(checkpoint):
        epochs = resumed_from  # fit then only restores early stopping's best weights
        log.info("Early stopping had ended this run at epoch %d", resumed_from)

    per_pass = micro_batch_size(training)
    log.info("batch of %d images, %d per forward/backward pass", training["batch_size"], per_pass)
    reduce_lr, early_stopping = score_callbacks(
        training["reduce_lr_patience"], training["early_stopping_patience"]
    )
    callbacks = [
        _validation_callback(val_x, val["masks"], loss_fn, per_pass, target),
        reduce_lr,  # logs the epoch's learning rate, then cuts it after a plateau
        early_stopping,
        # The epoch's history row before its checkpoint: a job killed between the two runs that
        # epoch again and writes its row twice (_read_history keeps the last), rather than
        # resuming after an epoch whose row was never written.
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        # After the two it carries: the checkpoint holds the learning rate and counters as they
        # leave each epoch.
        checkpoint_callback(checkpoint, (reduce_lr, early_stopping), fingerprint),
        *extra_callbacks,
    ]
    started = time.perf_counter()
    model.fit(
        training_batches(train["images"], train_y, per_pass, seed, first_epoch=resumed_from),
        epochs=epochs,
        initial_epoch=resumed_from,
        shuffle=False,  # the batches come in epoch_order
        callbacks=callbacks,
        verbose=2,
    )
    train_seconds = time.perf_counter() - started
    history = _read_history(history_csv)
    best = max(history, key=lambda row: float(row["val_miou"]), default=None)
    best_miou = float(best["val_miou"]) if best else float("nan")

    with atomic_path(model_out) as tmp:
        model.save(tmp)
    with atomic_path(history_out) as tmp:
        with open(tmp, "w", newline="") as handle:
            if history:
                writer = csv.DictWriter(handle, fieldnames=list(history[0]))
                writer.writeheader()
                writer.writerows(history)
    info = {
        "architecture": architecture,
        "features": describe(architecture, params),
        "params": params,
        "loss": loss,
        "target": target,
        "seed": seed,
        "parameter_count": int(model.count_params()),
        "batch_size": training["batch_size"],
        "micro_batch_size": per_pass,
        "epochs_run": len(history),
        "resumed_from_epoch": resumed_from,
        "best_val_miou": best_miou,
        "best_epoch": int(best["epoch"]) if best else None,  # as the history counts, from 0
        # Every epoch's training and validation, those before a resume included (the history
        # keeps them); the comparison table's training time.
        "train_seconds": round(sum(float(row.get("epoch_seconds") or 0) for row in history), 2),
        "train_seconds_this_run": round(train_seconds, 2),
        "images_per_second": round(
            len(train_y) * max(len(history) - resumed_from, 0) / max(train_seconds, 1e-9), 1
        ),
        "device": device,
    }
    save_json(info_out, info)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    log.info("done: %d epochs, best val_miou %.4f", len(history), best_miou)
    return info


def train_member_in(
    out_dir: str | Path,
    train_npz: str,
    val_npz: str,
    settings: dict,
    seed: int,
    extra_callbacks: tuple = (),
) -> dict:
    """`train_member` with a member's resolved settings (`marsseg.variants.resolve_members`),
    writing model.keras, history.csv, info.json and its checkpoints into `out_dir` (the
    benchmark and the Optuna trials train this way)."""
    out_dir = Path(out_dir)
    return train_member(
        train_npz=str(train_npz),
        val_npz=str(val_npz),
        model_out=str(out_dir / "model.keras"),
        history_out=str(out_dir / "history.csv"),
        info_out=str(out_dir / "info.json"),
        checkpoint_dir=str(out_dir / "checkpoint"),
        architecture=settings["architecture"],
        params=settings["params"],
        loss=settings["loss"],
        training=settings["training"],
        seed=seed,
        target=settings.get("target", "classes"),
        extra_callbacks=extra_callbacks,
    )
