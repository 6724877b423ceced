"""The architectures: shapes, softmax, save/load, training, params and the keras-free contract."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from marsseg.models import (
    ARCHITECTURE_NAMES,
    PARAM_DEFAULTS,
    build_model,
    check_depth,
    describe,
    resolve_params,
)
from marsseg.models.losses import make_loss

TINY = {
    "unet": {"filters": [4, 8], "dilation_rates": [1, 2]},
    "stacked": {"filters": [4, 8]},
    "parallel_symmetric": {"filters": [4, 8]},
    "parallel_unbalanced": {"filters_a": [4, 8, 8], "filters_b": [4, 8]},
    "multipath": {"filters": [4, 8], "dilation_rates": [1, 2], "se_ratio": 2},
    "bigrock_binary": {"filters": [4, 8], "dropout": 0.1},
}


def classes(architecture):
    return 2 if architecture == "bigrock_binary" else 5


def images(n=2, seed=0):
    return np.random.default_rng(seed).random((n, 64, 128, 1), dtype=np.float32)


def test_names_and_defaults_cover_every_architecture():
    assert set(TINY) == set(ARCHITECTURE_NAMES) == set(PARAM_DEFAULTS)
    assert len(ARCHITECTURE_NAMES) == 6


def test_package_import_does_not_import_keras():
    code = (
        "import sys, marsseg.models as m; "
        "m.describe('multipath', {}); m.resolve_params('unet', {'filters': [8, 16]}); "
        "m.inverse_frequency_weights([[0, 1]], num_classes=2); "
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("architecture", ARCHITECTURE_NAMES)
def test_builder_maps_images_to_probabilities_and_round_trips(architecture, tmp_path):
    keras.utils.set_random_seed(0)
    num_classes = classes(architecture)
    model = build_model(architecture, TINY[architecture], num_classes=num_classes)
    assert model.input.shape == (None, 64, 128, 1)
    assert model.output.shape == (None, 64, 128, num_classes)
    assert model.layers[-1].name == "probabilities"
    x = images()
    p = keras.ops.convert_to_numpy(model(x, training=False))  # eager: faster than predict here
    assert p.shape == (2, 64, 128, num_classes) and p.dtype == np.float32
    assert p.min() >= 0
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
    assert p.std() > 0  # not a constant map

    path = tmp_path / f"{architecture}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.count_params() == model.count_params()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x, training=False)), p)


def test_unet_params_shape_the_graph():
    model = build_model("unet", {"filters": [4, 8, 16], "dilation_rates": [1, 2, 4]})
    names = {layer.name for layer in model.layers}
    assert {"enc1_1_conv", "enc3_pool", "dec1_dropout", "logits"} <= names
    assert "enc4_1_conv" not in names
    rates = [model.get_layer(f"bottleneck_{i}_conv").dilation_rate for i in (1, 2, 3)]
    assert rates == [(1, 1), (2, 2), (4, 4)]
    assert model.get_layer("bottleneck_1_conv").filters == 32  # twice the last width
    assert {"enc1_1_ln", "enc1_1_bn"} <= names  # LayerNorm + BatchNorm (seed 000)
    plain = build_model("unet", {"filters": [4, 8], "dropout": 0, "normalization": "none"})
    plain_names = {layer.name for layer in plain.layers}
    assert not any(n.endswith(("_ln", "_bn", "_dropout")) for n in plain_names)
    # depth 4 fits 64x128 too
    assert build_model("unet", {"filters": [2, 2, 2, 2]}).get_layer("enc4_pool").output.shape == (
        None,
        4,
        8,
        2,
    )


def test_parameter_counts_by_hand():
    # 1 block of width 2, bottleneck 4 (one conv, no norm), kernel 3, 5 classes:
    # enc 1->2, 2->2; bottleneck 2->4; dec (4+2)->2, 2->2; logits 2->5; all with bias
    model = build_model(
        "unet", {"filters": [2], "dilation_rates": [1], "normalization": "none", "dropout": 0}
    )
    expected = (9 * 1 * 2 + 2) + (9 * 2 * 2 + 2) + (9 * 2 * 4 + 4)
    expected += (9 * 6 * 2 + 2) + (9 * 2 * 2 + 2) + (2 * 5 + 5)
    assert model.count_params() == expected == 297
    # the parallel model is two such UNets' weights plus a 1x1 fusion of 10 -> 5 logits
    parallel = build_model(
        "parallel_symmetric",
        {"filters": [2], "dilation_rates": [1], "normalization": "none", "dropout": 0},
    )
    assert parallel.count_params() == 2 * expected + (10 * 5 + 5)


def test_stacked_second_unet_sees_probabilities_and_image():
    model = build_model("stacked", TINY["stacked"])
    assert model.get_layer("s2_input").output.shape == (None, 64, 128, 5 + 1)
    assert model.get_layer("s1_probabilities").dtype_policy.compute_dtype == "float32"


def test_multipath_has_four_encoder_paths_and_se_bottleneck():
    model = build_model("multipath", {"filters": [4, 8]})
    names = {layer.name for layer in model.layers}
    for path in ("plain2_pool", "res2_pool", "gc2_pool", "ms2_pool"):
        assert path in names
    assert model.get_layer("bottleneck_concat").output.shape == (None, 16, 32, 4 * 8)
    assert model.get_layer("bottleneck_se_scale").output.shape == (None, 16, 32, 32)
    assert model.get_layer("dec1_concat").output.shape == (None, 64, 128, 8 + 4 * 4)
    assert {"res1_add", "gc1_context_add", "ms1_d2_conv"} <= names


def test_mixed_precision_keeps_float32_softmax():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("unet", TINY["unet"])
        assert model.get_layer("enc1_1_conv").compute_dtype == "float16"
        assert model.output.dtype == "float32"
        p = keras.ops.convert_to_numpy(model(images(1), training=False))
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "architecture, loss_cfg, eager",
    [
        ("unet", {"name": "focal", "gamma": 0.5, "class_weights": [0, 1, 1, 1, 5]}, False),
        (
            "multipath",
            {"name": "combined", "components": [{"name": "focal"}, {"name": "dice"}]},
            True,
        ),
        (
            "bigrock_binary",
            {"name": "sparse_categorical_crossentropy", "class_weights": [1, 5]},
            True,
        ),
    ],
)
def test_a_few_train_steps_lower_the_loss(architecture, loss_cfg, eager):
    """A few steps on one tiny batch (eager where the graph tracing would cost most of the time)."""
    keras.utils.set_random_seed(1)
    num_classes = classes(architecture)
    x = images(4, seed=1)
    y = np.minimum((x[..., 0] * num_classes).astype(np.uint8), num_classes - 1)  # learnable
    model = build_model(architecture, TINY[architecture], num_classes=num_classes)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-2),
        loss=make_loss(loss_cfg, num_classes=num_classes),
        run_eagerly=eager,
    )
    losses = model.fit(x, y, epochs=6, batch_size=4, verbose=0).history["loss"]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.parametrize(
    "architecture, params, needle",
    [
        ("resnet", {}, "resnet"),
        ("unet", {"filter": [8]}, "filter"),
        ("multipath", {"filters_a": [8]}, "filters_a"),
        ("unet", {"dropout": 1.5}, "dropout"),
        ("unet", {"dropout": 1.0}, r"'dropout' must be a number in \[0, 1\), got 1\.0"),
        ("unet", {"filters": []}, "filters"),
        ("unet", {"normalization": "group"}, "group"),
        ("parallel_unbalanced", {"filters_a": [4, 8], "filters_b": [8, 16]}, "different"),
        # parallel branches named by their rate: a repeated rate clashed at build time
        ("multipath", {"dilation_rates": [1, 1]}, r"each rate once, got \[1, 1\]"),
        # values of the wrong type: a ValueError naming the param (was TypeError or unnamed)
        ("unet", {"kernel_size": None}, "'kernel_size' must be an integer >= 1, got None"),
        ("unet", {"kernel_size": "3"}, "'kernel_size' must be an integer >= 1, got '3'"),
        ("unet", {"dropout": None}, r"'dropout' must be a number in \[0, 1\), got None"),
        ("unet", {"filters": [8, "wide"]}, "'filters' must hold integers >= 1"),
        ("multipath", {"se_ratio": [8]}, r"'se_ratio' must be an integer >= 1, got \[8\]"),
    ],
)
def test_bad_names_raise_value_error(architecture, params, needle):
    with pytest.raises(ValueError, match=needle) as error:
        build_model(architecture, params)
    with pytest.raises(ValueError, match=needle):
        describe(architecture, params)
    if needle in ("resnet",):
        assert "unet" in str(error.value) and "multipath" in str(error.value)  # lists valid ones
    if needle in ("filter", "filters_a"):
        assert "dilation_rates" in str(error.value)


def test_build_model_checks_classes_and_input_size():
    with pytest.raises(ValueError, match="num_classes=2"):
        build_model("bigrock_binary", {})
    with pytest.raises(ValueError, match="'filters' has 7 widths.* 64x128 inputs allow at most 6"):
        build_model("unet", {"filters": [4, 4, 4, 4, 4, 4, 4]})


@pytest.mark.parametrize("architecture", ARCHITECTURE_NAMES)
def test_every_list_of_filters_is_checked_against_the_input_size(architecture):
    keys = [
        key for key in ("filters", "filters_a", "filters_b") if key in PARAM_DEFAULTS[architecture]
    ]
    for key in keys:
        deepest = resolve_params(architecture, {key: [4] * 6})  # 64x128 halved 6 times: 1x2
        check_depth(deepest)
        too_deep = resolve_params(architecture, {key: [4] * 7})
        with pytest.raises(ValueError, match=f"param '{key}' has 7 widths.*at most 6"):
            check_depth(too_deep)
    check_depth(resolve_params(architecture, {keys[0]: [4] * 5}), 96, 160)  # 96 = 3 * 2**5
    with pytest.raises(ValueError, match="96x160 inputs allow at most 5"):
        check_depth(resolve_params(architecture, {keys[0]: [4] * 6}), 96, 160)


def test_describe_words():
    assert describe("unet", {}) == (
        "3-block UNet (32-64-128), LN+BN, dilated bottleneck (1,2,4), dropout 0.2"
    )
    assert describe("unet", {"filters": [8, 16], "dropout": 0, "dilation_rates": [1, 1]}) == (
        "2-block UNet (8-16), LN+BN, no dropout"
    )
    assert "2-block UNet (32-64)" in describe("parallel_unbalanced", {})
    assert describe("multipath", {}) == (
        "3-block Multipath UNet (32-64-128): plain/residual/global-context/dilated (1,2,4) "
        "encoders, SE (ratio 8) bottleneck, BN, no dropout"
    )
    # the kernel size is in the words of every architecture (multipath left it out)
    assert describe("multipath", {"kernel_size": 5}).endswith("BN, kernel 5, no dropout")
    assert describe("unet", {"kernel_size": 5}).endswith(
        "LN+BN, dilated bottleneck (1,2,4), kernel 5, dropout 0.2"
    )
    assert resolve_params("unet", {"filters": (8.0, 16)})["filters"] == [8, 16]
