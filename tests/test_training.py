"""Training settings that reach the model."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from marsseg.models.losses import make_loss
from marsseg.training import accelerators, compiled_model, jit_compile_for, micro_batch_size
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


def test_xla_setting_reaches_tensorflow_and_jax_always_compiles():
    loss = make_loss({"name": "sparse_categorical_crossentropy"}, num_classes=5)
    for xla in (False, True):
        model = compiled_model("unet", PARAMS, loss, {**TRAINING, "xla": xla}, num_classes=5)
        assert model.jit_compile is xla  # this suite runs on TensorFlow
    # On JAX, Keras' jit_compile=False runs op by op from Python (1.3 s a step on an H100).
    assert jit_compile_for("jax", {**TRAINING, "xla": False}) is True
    assert jit_compile_for("tensorflow", TRAINING) == "auto"


@pytest.mark.parametrize(
    ("batch_size", "setting", "expected"),
    [(32, None, 32), (32, 4, 4), (32, 64, 32), (128, "auto", 8), (12, "auto", 6), (5, "auto", 5)],
)
def test_micro_batch_size_on_a_cpu(batch_size, setting, expected):
    assert not accelerators()  # the tests run on a CPU
    training = {"batch_size": batch_size, "micro_batch_size": setting}
    assert micro_batch_size(training) == expected


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


def _cpu_memory_pool(setting: str | None, import_marsseg: bool) -> tuple[str, str]:
    """In a fresh process with TF_CPU_ALLOCATOR_USE_BFC set to `setting` (None: unset): the
    variable as TensorFlow sees it, and "peak N" (bytes) if its CPU allocator is a pool that
    reports memory stats, else "no pool"."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    if setting is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = setting
    script = (
        f"import os{', marsseg' if import_marsseg else ''}, tensorflow as tf\n"
        "print('setting', os.environ.get('TF_CPU_ALLOCATOR_USE_BFC'))\n"
        "(tf.ones((256, 256)) * 2).numpy()\n"
        "try:\n"
        "    print('peak', tf.config.experimental.get_memory_info('CPU:0')['peak'])\n"
        "except ValueError:\n"
        "    print('no pool')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    prefixes = ("setting", "peak", "no pool")
    seen, pool = [line for line in result.stdout.splitlines() if line.startswith(prefixes)]
    return seen, pool


@pytest.mark.parametrize("setting", [None, "false"])
def test_importing_marsseg_gives_tensorflow_its_own_cpu_memory_pool(setting):
    """TensorFlow keeps its CPU tensors in its BFC pool (the only CPU allocator that reports
    memory stats) once marsseg is imported, unless the user set TF_CPU_ALLOCATOR_USE_BFC: their
    setting reaches TensorFlow unchanged, and TensorFlow does as it does without marsseg (its
    default differs between machines: some CPUs get a pool without the variable)."""
    pytest.importorskip("tensorflow")
    seen, pool = _cpu_memory_pool(setting, import_marsseg=True)
    if setting is None:
        assert seen == "setting true"
        assert pool.startswith("peak") and int(pool.split()[1]) >= 256 * 256 * 4
    else:
        assert seen == "setting false"
        _, default_pool = _cpu_memory_pool(None, import_marsseg=False)
        assert (pool == "no pool") == (default_pool == "no pool")
