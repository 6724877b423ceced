"""One builder per architecture; `marsseg.models.build_model` validates the params and calls these.

Each builder takes the resolved params (defaults filled in, see `marsseg.models.PARAM_DEFAULTS`),
the input shape and the number of classes, and returns a functional `keras.Model` whose output is
the float32 softmax layer ``probabilities``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from marsseg.models import blocks


def unet_features(x, p: dict, filters: Sequence[int], prefix: str = ""):
    """Seed 000's UNet up to its last decoder features (before the 1x1 classifier).

    Encoder: per width, two conv-norm-ReLU then 2x2 max pooling. Bottleneck: twice the last width,
    one conv per dilation rate. Decoder: bilinear upsampling, skip concatenation, two conv-norm-ReLU
    and dropout at the end of each up block.
    """
    k, norm = p["kernel_size"], p["normalization"]
    skips = []
    for i, width in enumerate(filters, start=1):
        x = blocks.conv_block(x, width, f"{prefix}enc{i}", k, (1, 1), norm)
        skips.append(x)
        x = blocks.downsample(x, f"{prefix}enc{i}")
    x = blocks.conv_block(x, 2 * filters[-1], f"{prefix}bottleneck", k, p["dilation_rates"], norm)
    return decoder(x, [[skip] for skip in skips], filters, p, prefix)


def decoder(x, skips: Sequence[Sequence], filters: Sequence[int], p: dict, prefix: str = ""):
    """From the deepest level up: bilinear upsampling, concatenation with that level's skip
    tensors (`skips[i]`: a list, one per encoder path), two conv-norm-ReLU and dropout."""
    k, norm = p["kernel_size"], p["normalization"]
    for i in range(len(filters), 0, -1):
        x = blocks.upsample_concat(x, skips[i - 1], f"{prefix}dec{i}")
        x = blocks.conv_block(x, filters[i - 1], f"{prefix}dec{i}", k, (1, 1), norm)
        x = blocks.dropout(x, p["dropout"], f"{prefix}dec{i}")
    return x


def _input(input_shape):
    return keras.Input(shape=input_shape, name="image")


def build_unet(p: dict, input_shape, num_classes: int, name: str = "unet") -> keras.Model:
    inputs = _input(input_shape)
    x = unet_features(inputs, p, p["filters"])
    x = blocks.logits_head(x, num_classes, "logits")
    return keras.Model(inputs, blocks.softmax(x), name=name)


def build_bigrock_binary(p: dict, input_shape, num_classes: int) -> keras.Model:
    """Seed 001's Big Rock helper: the UNet with 2 classes (not Big Rock / Big Rock)."""
    return build_unet(p, input_shape, num_classes, name="bigrock_binary")


def build_stacked(p: dict, input_shape, num_classes: int) -> keras.Model:
    """Two UNets in series; the second sees the first's probabilities next to the image."""
    inputs = _input(input_shape)
    x = unet_features(inputs, p, p["filters"], "s1_")
    x = blocks.logits_head(x, num_classes, "s1_logits")
    first = blocks.softmax(x, "s1_probabilities")
    x = layers.Concatenate(name="s2_input")([first, inputs])
    x = unet_features(x, p, p["filters"], "s2_")
    x = blocks.logits_head(x, num_classes, "s2_logits")
    return keras.Model(inputs, blocks.softmax(x), name="stacked")


def _parallel(p: dict, input_shape, num_classes: int, filters_a, filters_b, name: str):
    """Two UNets on the same input; their logits are concatenated and fused by a 1x1 conv."""
    inputs = _input(input_shape)
    a = blocks.logits_head(unet_features(inputs, p, filters_a, "a_"), num_classes, "a_logits")
    b = blocks.logits_head(unet_features(inputs, p, filters_b, "b_"), num_classes, "b_logits")
    x = layers.Concatenate(name="fusion_concat")([a, b])
    x = blocks.logits_head(x, num_classes, "fusion_logits")
    return keras.Model(inputs, blocks.softmax(x), name=name)


def build_parallel_symmetric(p: dict, input_shape, num_classes: int) -> keras.Model:
    return _parallel(p, input_shape, num_classes, p["filters"], p["filters"], "parallel_symmetric")


def build_parallel_unbalanced(p: dict, input_shape, num_classes: int) -> keras.Model:
    return _parallel(
        p, input_shape, num_classes, p["filters_a"], p["filters_b"], "parallel_unbalanced"
    )


def build_multipath(p: dict, input_shape, num_classes: int) -> keras.Model:
    """Seed 001's Multipath UNet.

    Four encoder paths from the image, each with its own pooling: plain (conv block), residual,
    global context and multiscale dilated. At the bottleneck the four are concatenated, gated by
    squeeze-and-excitation and fused by a conv block of twice the last width. Each decoder level
    concatenates the upsampled features with the four paths' skips at that level.
    """
    k, norm, rates = p["kernel_size"], p["normalization"], p["dilation_rates"]
    filters = p["filters"]
    inputs = _input(input_shape)
    paths = {"plain": inputs, "res": inputs, "gc": inputs, "ms": inputs}
    skips: list[list] = []
    for i, width in enumerate(filters, start=1):
        level = [
            blocks.conv_block(paths["plain"], width, f"plain{i}", k, (1, 1), norm),
            blocks.residual_block(paths["res"], width, f"res{i}", k, norm),
            blocks.global_context_block(paths["gc"], width, f"gc{i}", k, norm, p["se_ratio"]),
            blocks.multiscale_block(paths["ms"], width, f"ms{i}", k, rates, norm),
        ]
        skips.append(level)
        for key, tensor in zip(paths, level, strict=True):
            paths[key] = blocks.downsample(tensor, f"{key}{i}")
    x = layers.Concatenate(name="bottleneck_concat")(list(paths.values()))
    x = blocks.squeeze_excite(x, 4 * filters[-1], "bottleneck_se", p["se_ratio"])
    x = blocks.conv_block(x, 2 * filters[-1], "bottleneck", k, (1, 1), norm)
    x = decoder(x, skips, filters, p)
    x = blocks.logits_head(x, num_classes, "logits")
    return keras.Model(inputs, blocks.softmax(x), name="multipath")


BUILDERS = {
    "unet": build_unet,
    "stacked": build_stacked,
    "parallel_symmetric": build_parallel_symmetric,
    "parallel_unbalanced": build_parallel_unbalanced,
    "multipath": build_multipath,
    "bigrock_binary": build_bigrock_binary,
}
