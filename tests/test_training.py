"""Training settings that reach the model."""

from __future__ import annotations

import ast
import copy
import os
import subprocess
import sys
from types import SimpleNamespace

import keras
import numpy as np
import pytest

import marsseg.training
from marsseg.metrics import confusion_matrix, mean_iou
from marsseg.models.losses import make_loss
from marsseg.training import (
    accelerators,
    class_weights_for,
    compiled_model,
    jit_compile_for,
    micro_batch_size,
)
from marsseg.variants import resolve_members

TRAINING = {
    "batch_size": 16,
    "micro_batch_size": None,
    "learning_rate": 0.001,
    "weight_decay": 0.001,
}
PARAMS = {"filters": [4, 8], "dilation_rates": [1, 2]}


def batch_norm_momenta(model) -> set[float]:
    return {
        layer.momentum
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }


def test_batch_norm_momentum_setting_reaches_every_batch_norm_layer():
    loss = make_loss({"name": "sparse_categorical_crossentropy"}, num_classes=5)
    default = compiled_model("unet", PARAMS, loss, TRAINING, num_classes=5)
    assert batch_norm_momenta(default) == {0.99}
    fast = compiled_model(
        "stacked", PARAMS, loss, {**TRAINING, "batch_norm_momentum": 0.9}, num_classes=5
    )
    assert batch_norm_momenta(fast) == {0.9}
    in_passes = compiled_model(
        "unet",
        PARAMS,
        loss,
        {**TRAINING, "batch_size": 32, "micro_batch_size": 8, "batch_norm_momentum": 0.9},
        num_classes=5,
    )
    # 4 passes per batch, 4 updates of the moving statistics: the same horizon in images
    assert batch_norm_momenta(in_passes) == {0.9**0.25}
    assert (
        keras.layers.BatchNormalization.from_config(
            [layer for layer in fast.layers if "bn" in layer.name][0].get_config()
        ).momentum
        == 0.9
    )


def test_xla_setting_chooses_tensorflows_compiler_and_jax_always_compiles():
    assert jit_compile_for("tensorflow", {**TRAINING, "xla": False}) is False
    assert jit_compile_for("tensorflow", {**TRAINING, "xla": True}) is True
    assert jit_compile_for("tensorflow", TRAINING) == "auto"
    # On JAX, Keras' jit_compile=False runs op by op from Python (1.3 s a step on an H100).
    for setting in (False, True, "auto"):
        assert jit_compile_for("jax", {**TRAINING, "xla": setting}) is True


def test_xla_setting_reaches_the_compiled_model():
    loss = make_loss({"name": "sparse_categorical_crossentropy"}, num_classes=5)
    for xla in (False, True):
        training = {**TRAINING, "xla": xla}
        model = compiled_model("unet", PARAMS, loss, training, num_classes=5)
        assert model.jit_compile is jit_compile_for(keras.backend.backend(), training)


@pytest.fixture
def keep_dtype_policy():
    """The dtype policy is process-global: give the other tests back the one they had."""
    policy = keras.mixed_precision.global_policy()
    yield
    keras.mixed_precision.set_global_policy(policy)


def test_mixed_precision_and_xla_train_together(keep_dtype_policy):
    """The README's GPU settings together. On TensorFlow, XLA's gradient of a float16 bilinear
    upsampling came back float32 and XLA refused the step ("Seen floating point types of
    different precisions"); the upsampling now computes in float32."""
    from marsseg.training import setup_backend

    training = {**TRAINING, "batch_size": 2, "mixed_precision": True, "xla": True}
    setup_backend(1, mixed_precision=True)
    loss = make_loss({"name": "focal", "class_weights": [0, 1, 1, 1, 5]}, num_classes=5)
    model = compiled_model(
        "unet",
        {"filters": [4], "dilation_rates": [1], "dropout": 0.1},
        loss,
        training,
        num_classes=5,
    )
    assert model.get_layer("dec1_2_conv").compute_dtype == "float16"
    assert model.get_layer("dec1_up").compute_dtype == "float32"
    assert model.jit_compile is True
    before = model.get_weights()
    x = np.random.default_rng(0).random((2, 64, 128, 1), dtype=np.float32)
    y = np.minimum((x[..., 0] * 5).astype(np.uint8), 4)
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


@pytest.mark.parametrize(
    ("batch_size", "setting", "expected"),
    [(32, None, 32), (32, 4, 4), (32, 64, 32), (12, 12, 12)],
)
@pytest.mark.parametrize("devices", [[], ["/physical_device:GPU:0"]])
def test_a_set_micro_batch_size_holds_on_any_device(
    monkeypatch, devices, batch_size, setting, expected
):
    monkeypatch.setattr(marsseg.training, "accelerators", lambda: devices)
    training = {"batch_size": batch_size, "micro_batch_size": setting}
    assert micro_batch_size(training) == expected


@pytest.mark.parametrize(
    ("batch_size", "on_cpu"),
    [(128, 8), (32, 8), (16, 8), (12, 6), (9, 3), (7, 7), (5, 5), (1, 1)],
)
@pytest.mark.parametrize("setting", ["auto", "absent"])
def test_auto_micro_batch_size_is_the_largest_divisor_up_to_8_on_a_cpu_else_the_batch(
    monkeypatch, batch_size, on_cpu, setting
):
    training = {"batch_size": batch_size}
    if setting == "auto":
        training["micro_batch_size"] = "auto"
    monkeypatch.setattr(marsseg.training, "accelerators", lambda: [])
    assert micro_batch_size(training) == on_cpu
    monkeypatch.setattr(marsseg.training, "accelerators", lambda: ["/physical_device:GPU:0"])
    assert micro_batch_size(training) == batch_size


def test_accelerators_are_the_gpus_tensorflow_lists(monkeypatch):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's device list; this suite runs on TensorFlow")
    import tensorflow as tf

    real = [device.name for device in tf.config.list_physical_devices("GPU")]
    assert accelerators() == real
    gpu = SimpleNamespace(name="/physical_device:GPU:0", device_type="GPU")
    cpu = SimpleNamespace(name="/physical_device:CPU:0", device_type="CPU")

    for devices, expected in (([cpu, gpu], ["/physical_device:GPU:0"]), ([cpu], [])):

        def listed(device_type=None, devices=devices):
            return [d for d in devices if device_type in (None, d.device_type)]

        monkeypatch.setattr(tf.config, "list_physical_devices", listed)
        assert accelerators() == expected


def test_a_micro_batch_size_that_does_not_divide_the_batch_is_refused_with_the_fix():
    config = {
        "training": {"batch_size": 32, "micro_batch_size": 5},
        "variants": {"unet": {"architecture": "unet", "loss": {"name": "focal"}}},
    }
    with pytest.raises(ValueError, match=r"variant 'unet'.*micro_batch_size 5.*Fix: set"):
        resolve_members(config, "unet")


def test_passes_of_a_batch_make_one_update_equal_to_the_whole_batch():
    """Two passes of 8 images give the weights one update, the same as one pass of all 16
    (without batch normalisation, whose statistics depend on the pass)."""
    rng = np.random.default_rng(0)
    x = rng.random((16, 64, 128, 1), dtype=np.float32)
    y = rng.integers(0, 5, (16, 64, 128)).astype(np.uint8)
    loss = make_loss({"name": "sparse_categorical_crossentropy"}, num_classes=5)
    params = {**PARAMS, "normalization": "none", "dropout": 0.0}
    weights = {}
    for name, setting in (("initial", None), ("whole", None), ("passes", 8)):
        keras.utils.set_random_seed(0)
        training = {**TRAINING, "learning_rate": 0.01, "micro_batch_size": setting}
        model = compiled_model("unet", params, loss, training, num_classes=5)
        if name != "initial":
            size = micro_batch_size(training)
            model.fit(x, y, batch_size=size, epochs=1, shuffle=False, verbose=0)
            assert int(model.optimizer.iterations) == 1
        weights[name] = model.get_weights()
    pairs = zip(weights["initial"], weights["whole"], strict=True)
    assert max(np.abs(after - start).max() for start, after in pairs) > 1e-3
    for whole, passes in zip(weights["whole"], weights["passes"], strict=True):
        np.testing.assert_allclose(passes, whole, atol=1e-5)


def _environment_setting(name: str, setting: str | None, import_marsseg: bool) -> tuple:
    """In a fresh process with the variable `name` set to `setting` (None: unset), after
    importing marsseg or not: the variable in os.environ and in the C environment (getenv,
    where TensorFlow reads it), each None where unset."""
    env = {k: v for k, v in os.environ.items() if k != name}
    if setting is not None:
        env[name] = setting
    script = (
        f"import ctypes, os{', marsseg' if import_marsseg else ''}\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.getenv.restype = ctypes.c_char_p\n"
        f"name = {name!r}\n"
        "print(repr((os.environ.get(name), libc.getenv(name.encode()))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    in_python, in_c = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    return in_python, None if in_c is None else in_c.decode()


@pytest.mark.parametrize("name", ["TF_CPU_ALLOCATOR_USE_BFC", "TF_FORCE_GPU_ALLOW_GROWTH"])
@pytest.mark.parametrize(("setting", "expected"), [(None, "true"), ("false", "false"), ("0", "0")])
def test_importing_marsseg_sets_tensorflows_memory_defaults_unless_the_user_did(
    name, setting, expected
):
    """Importing marsseg sets TF_CPU_ALLOCATOR_USE_BFC=true (TensorFlow's own CPU memory pool)
    and TF_FORCE_GPU_ALLOW_GROWTH=true (a GPU job takes only the memory it needs) where they
    are unset, in the environment TensorFlow reads, and leaves a user's value alone."""
    assert _environment_setting(name, setting, import_marsseg=False) == (setting, setting)
    assert _environment_setting(name, setting, import_marsseg=True) == (expected, expected)


@pytest.mark.parametrize("loss_name", ["focal", "sparse_categorical_crossentropy"])
def test_validation_loss_in_passes_is_the_loss_of_the_whole_set(loss_name):
    """validation_scores takes the loss a pass at a time (7 images in passes of 3: 3, 3, 1),
    weighted by the images in each; for a per-pixel mean that is the whole set's loss."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64, 128, 1)), keras.layers.Conv2D(5, 3, padding="same", activation="softmax")]
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (7, 64, 128, 1)).astype("float32")
    y = rng.integers(0, 5, (7, 64, 128)).astype("uint8")
    loss_fn = make_loss({"name": loss_name, "class_weights": [0, 1, 1, 1, 20]}, num_classes=5)

    val_loss, val_miou = marsseg.training.validation_scores(model, x, y, loss_fn, 3)

    probabilities = model.predict(x, verbose=0)
    whole = float(keras.ops.convert_to_numpy(loss_fn(y, probabilities)))
    assert val_loss == pytest.approx(whole, rel=1e-5)
    first_pass_only = float(keras.ops.convert_to_numpy(loss_fn(y[:3], probabilities[:3])))
    assert val_loss != pytest.approx(first_pass_only, rel=1e-5)  # every pass counts
    predicted = np.argmax(probabilities, axis=-1)
    expected = mean_iou(confusion_matrix(y, predicted))
    assert 0 < val_miou == pytest.approx(expected)


class FixedPredictions:
    """A model whose predictions are given: predict_on_batch returns them a batch at a time."""

    def __init__(self, probabilities):
        self.probabilities, self.given = probabilities, 0

    def predict_on_batch(self, x):
        batch = self.probabilities[self.given : self.given + len(x)]
        self.given += len(x)
        return batch


def test_the_big_rock_helper_is_scored_by_the_course_iou_of_big_rock():
    """The binary helper's val_miou is the IoU of Big Rock over labelled pixels: not the mean
    with the IoU of "the rest", nor with background pixels counted as the rest."""
    masks = np.zeros((2, 4, 4), dtype=np.uint8)  # 16 pixels labelled background
    masks[:, :2] = 2  # 16 Bedrock
    masks[0, 2:, :2] = 4  # 4 Big Rock
    found = masks == 4
    found[0, 2, :2] = False  # half the Big Rock found (TP 2, FN 2)
    found[0, 0, 3] = True  # one Bedrock pixel called Big Rock (FP 1)
    found[1, 3, :] = True  # background pixels called Big Rock: unscored
    probabilities = np.stack([~found, found], axis=-1).astype("float32")
    loss_fn = make_loss({"name": "sparse_categorical_crossentropy"}, num_classes=2)
    x = np.zeros((2, 4, 4, 1), dtype="float32")

    _, val_miou = marsseg.training.validation_scores(
        FixedPredictions(probabilities), x, masks, loss_fn, 1, target="big_rock"
    )
    assert val_miou == pytest.approx(2 / 5)  # TP / (TP + FP + FN)
    # no Big Rock to find and none found: 0, not NaN (never better to the callbacks)
    none_found = np.stack([np.ones_like(found), np.zeros_like(found)], axis=-1).astype("float32")
    _, val_miou = marsseg.training.validation_scores(
        FixedPredictions(none_found), x, np.where(masks == 4, 2, masks), loss_fn, 1, "big_rock"
    )
    assert val_miou == 0.0


def test_inverse_frequency_weights_of_a_combined_loss_leave_the_settings_untouched():
    masks = np.zeros((2, 4, 4), dtype=np.uint8)
    masks[0, :2] = 1  # 8 Soil pixels, 2 Sand, the other 22 Background
    masks[1, 0, :2] = 3
    loss = {
        "name": "combined",
        "components": [
            {"name": "focal", "class_weights": "inverse_frequency", "max_weight": 4.0},
            {"name": "dice"},
        ],
    }
    settings = copy.deepcopy(loss)
    resolved = class_weights_for(loss, masks, num_classes=5)
    assert loss == settings
    focal, dice = resolved["components"]
    # 1 / percent of the 32 pixels: Soil 25 %, Sand 6.25 %; background 0, absent classes 0
    assert focal == {"name": "focal", "class_weights": pytest.approx([0, 0.04, 0, 0.16, 0])}
    assert dice == {"name": "dice"}
    # the binary Big Rock helper's class 0 ("not Big Rock", 30 of 32 pixels) keeps its weight
    helper = class_weights_for(
        {"name": "focal", "class_weights": "inverse_frequency"}, masks == 3, num_classes=2
    )
    assert helper["class_weights"] == pytest.approx([1 / 93.75, 0.16])
