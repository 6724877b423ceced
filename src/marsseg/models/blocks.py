"""Building blocks shared by the architectures (functional Keras, standard layers only).

Every function takes a tensor and a unique `name` prefix and returns a tensor; layer names are
``{name}_...`` so that two UNets in one model (prefixes ``a_``/``b_``) never clash.
"""

from __future__ import annotations

from collections.abc import Sequence

from keras import layers


def normalize(x, normalization: str, name: str):
    """The normalisation after a convolution: "ln_bn" (LayerNorm then BatchNorm), "bn", "ln", "none"."""
    if normalization in ("ln", "ln_bn"):
        x = layers.LayerNormalization(name=f"{name}_ln")(x)
    if normalization in ("bn", "ln_bn"):
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return x


def conv_norm_act(
    x,
    filters: int,
    name: str,
    kernel_size: int = 3,
    dilation_rate: int = 1,
    normalization: str = "bn",
    activation: str | None = "relu",
):
    """Conv2D ("same" padding) -> normalisation -> activation."""
    x = layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        dilation_rate=dilation_rate,
        use_bias=normalization == "none",
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = normalize(x, normalization, name)
    if activation:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def conv_block(
    x,
    filters: int,
    name: str,
    kernel_size: int = 3,
    dilation_rates: Sequence[int] = (1, 1),
    normalization: str = "bn",
):
    """One conv-norm-ReLU per entry of `dilation_rates` (two plain convolutions by default)."""
    for i, rate in enumerate(dilation_rates, start=1):
        x = conv_norm_act(x, filters, f"{name}_{i}", kernel_size, rate, normalization)
    return x


def downsample(x, name: str):
    return layers.MaxPooling2D(2, name=f"{name}_pool")(x)


def upsample_concat(x, skips: Sequence, name: str):
    """Bilinear x2 upsampling, then concatenation with the encoder's skip tensor(s).

    The upsampling computes in float32 also under mixed precision: TensorFlow's XLA kernel for
    the gradient of a bilinear resize (ResizeBilinearGrad, half-pixel centres) returns float32
    for a float16 input where the graph expects float16, and XLA refuses the mixed graph
    ("Seen floating point types of different precisions"). With float32 layers (the default
    policy) this changes nothing."""
    x = layers.UpSampling2D(2, interpolation="bilinear", dtype="float32", name=f"{name}_up")(x)
    return layers.Concatenate(name=f"{name}_concat")([x, *skips])


def dropout(x, rate: float, name: str):
    return layers.Dropout(rate, name=f"{name}_dropout")(x) if rate > 0 else x


def residual_block(x, filters: int, name: str, kernel_size: int = 3, normalization: str = "bn"):
    """He et al.'s basic block: two convolutions plus a 1x1-projected shortcut, then ReLU."""
    shortcut = conv_norm_act(x, filters, f"{name}_shortcut", 1, 1, normalization, activation=None)
    y = conv_norm_act(x, filters, f"{name}_1", kernel_size, 1, normalization)
    y = conv_norm_act(y, filters, f"{name}_2", kernel_size, 1, normalization, activation=None)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_relu")(y)


def squeeze_excite(x, channels: int, name: str, ratio: int = 8):
    """Squeeze-and-excitation (Hu et al.): channel gates from global average pooling."""
    hidden = max(channels // ratio, 1)
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    s = layers.Conv2D(hidden, 1, activation="relu", name=f"{name}_reduce")(s)
    s = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_expand")(s)
    return layers.Multiply(name=f"{name}_scale")([x, s])


def global_context_block(
    x, filters: int, name: str, kernel_size: int = 3, normalization: str = "bn", ratio: int = 8
):
    """A conv block whose output gets a transformed image-wide average added to every pixel."""
    x = conv_block(x, filters, name, kernel_size, (1, 1), normalization)
    hidden = max(filters // ratio, 1)
    g = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_context_pool")(x)
    g = layers.Conv2D(hidden, 1, name=f"{name}_context_reduce")(g)
    g = layers.LayerNormalization(name=f"{name}_context_ln")(g)
    g = layers.Activation("relu", name=f"{name}_context_relu")(g)
    g = layers.Conv2D(filters, 1, name=f"{name}_context_expand")(g)
    return layers.Add(name=f"{name}_context_add")([x, g])


def multiscale_block(
    x,
    filters: int,
    name: str,
    kernel_size: int = 3,
    dilation_rates: Sequence[int] = (1, 2, 4),
    normalization: str = "bn",
):
    """Parallel convolutions at several dilation rates, concatenated and fused by a 1x1 conv."""
    branches = [
        conv_norm_act(x, filters, f"{name}_d{rate}", kernel_size, rate, normalization)
        for rate in dilation_rates
    ]
    y = branches[0]
    if len(branches) > 1:
        y = layers.Concatenate(name=f"{name}_concat")(branches)
    return conv_norm_act(y, filters, f"{name}_fuse", 1, 1, normalization)


def logits_head(x, num_classes: int, name: str):
    """A 1x1 convolution to one score per class (no activation)."""
    return layers.Conv2D(num_classes, 1, name=name)(x)


def softmax(x, name: str = "probabilities"):
    """Softmax over the classes, always float32 (mixed precision keeps the output exact)."""
    return layers.Activation("softmax", dtype="float32", name=name)(x)
