"""Model builders for the Mars terrain segmentation study (keras-free at import time).

The Snakefile imports this package for the architecture names and the `describe` strings, so only
`build_model` imports Keras (lazily, through `marsseg.models.architectures`). The losses live in
`marsseg.models.losses`, which imports Keras at module level.

Every model maps (N, 64, 128, 1) float32 images in [0, 1] to (N, 64, 128, num_classes) softmax
probabilities (the last layer is a float32 softmax named ``probabilities``, also under mixed
precision), is built with the functional API from standard Keras layers, and round-trips through
``model.save("x.keras")`` / ``keras.models.load_model("x.keras", compile=False)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real

import numpy as np

from marsseg import IMAGE_HEIGHT, IMAGE_WIDTH

ARCHITECTURE_NAMES: tuple[str, ...] = (
    "unet",
    "stacked",
    "parallel_symmetric",
    "parallel_unbalanced",
    "multipath",
    "bigrock_binary",
)

NORMALIZATIONS: tuple[str, ...] = ("ln_bn", "bn", "ln", "none")

# Seed 000 (8pesto): 3-block UNet, LayerNormalization + BatchNormalization after the convolutions,
# dropout at the end of the up blocks, dilated convolutions in the bottleneck, kernel size 3.
_UNET_DEFAULTS: dict = {
    "filters": [32, 64, 128],
    "kernel_size": 3,
    "dropout": 0.2,
    "dilation_rates": [1, 2, 4],
    "normalization": "ln_bn",
}

# Seed 000 tried two UNets of different depths in parallel: their first 2-block UNet beside the
# final 3-block one.
_UNBALANCED_DEFAULTS: dict = {
    "filters_a": [32, 64, 128],
    "filters_b": [32, 64],
    "kernel_size": 3,
    "dropout": 0.2,
    "dilation_rates": [1, 2, 4],
    "normalization": "ln_bn",
}

# Seed 001 (PoliMi Dropouts): four encoder paths, squeeze-and-excitation fusion at the bottleneck,
# batch normalisation throughout. Their widths are not in the report; these match the UNet's.
_MULTIPATH_DEFAULTS: dict = {
    "filters": [32, 64, 128],
    "kernel_size": 3,
    "dropout": 0.0,
    "dilation_rates": [1, 2, 4],
    "se_ratio": 8,
    "normalization": "bn",
}

PARAM_DEFAULTS: dict[str, dict] = {
    "unet": _UNET_DEFAULTS,
    "stacked": _UNET_DEFAULTS,
    "parallel_symmetric": _UNET_DEFAULTS,
    "parallel_unbalanced": _UNBALANCED_DEFAULTS,
    "multipath": _MULTIPATH_DEFAULTS,
    "bigrock_binary": _UNET_DEFAULTS,
}


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURE_NAMES:
        raise ValueError(
            f"unknown architecture {architecture!r}; valid: {', '.join(ARCHITECTURE_NAMES)}"
        )


def _is_integer(value, minimum: int) -> bool:
    """A number (not a bool, not a string) with an integer value >= minimum (8 and 8.0 are)."""
    return (
        isinstance(value, Real)
        and not isinstance(value, bool)
        and float(value).is_integer()
        and value >= minimum
    )


def _int_list(name: str, value, minimum: int = 1) -> list[int]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"param {name!r} must be a non-empty list of integers, got {value!r}")
    if not all(_is_integer(v, minimum) for v in value):
        raise ValueError(f"param {name!r} must hold integers >= {minimum}, got {value!r}")
    return [int(v) for v in value]


def _int(name: str, value, minimum: int = 1) -> int:
    if not _is_integer(value, minimum):
        raise ValueError(f"param {name!r} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def resolve_params(architecture: str, params: Mapping | None) -> dict:
    """The architecture's defaults updated with `params`, validated (ValueError when bad)."""
    _check_architecture(architecture)
    defaults = PARAM_DEFAULTS[architecture]
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown param(s) {', '.join(map(repr, unknown))} for architecture "
            f"{architecture!r}; valid: {', '.join(defaults)}"
        )
    out = {**defaults, **params}
    for key in ("filters", "filters_a", "filters_b", "dilation_rates"):
        if key in out:
            out[key] = _int_list(key, out[key])
    out["kernel_size"] = _int("kernel_size", out["kernel_size"])
    dropout = out["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, Real) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"param 'dropout' must be a number in [0, 1), got {dropout!r}")
    out["dropout"] = float(dropout)
    if out["normalization"] not in NORMALIZATIONS:
        raise ValueError(
            f"param 'normalization' is {out['normalization']!r}; valid: {', '.join(NORMALIZATIONS)}"
        )
    if "se_ratio" in out:
        out["se_ratio"] = _int("se_ratio", out["se_ratio"])
    rates = out["dilation_rates"]
    if architecture == "multipath" and len(set(rates)) < len(rates):
        raise ValueError(
            "multipath's 'dilation_rates' are the parallel branches of its multiscale encoder "
            f"path, one per rate: give each rate once, got {rates}"
        )
    if architecture == "parallel_unbalanced" and len(out["filters_a"]) == len(out["filters_b"]):
        raise ValueError(
            "parallel_unbalanced needs 'filters_a' and 'filters_b' of different lengths (depths), "
            f"got {out['filters_a']} and {out['filters_b']}"
        )
    return out


def check_depth(p: dict, height: int = IMAGE_HEIGHT, width: int = IMAGE_WIDTH) -> None:
    """Each width in a list of filters is a down-block, which halves the image: resolved params
    (`resolve_params`) with more of them than a height x width input can halve are refused."""
    largest = 0
    while height % 2 ** (largest + 1) == 0 and width % 2 ** (largest + 1) == 0:
        largest += 1
    for key in ("filters", "filters_a", "filters_b"):
        if len(p.get(key, [])) > largest:
            raise ValueError(
                f"param {key!r} has {len(p[key])} widths, one down-block each, but {height}x{width} "
                f"inputs allow at most {largest} (each down-block halves them)"
            )


_NORM_WORDS = {"ln_bn": "LN+BN", "bn": "BN", "ln": "LN", "none": "no norm"}


def _unet_words(filters: list[int], plural: str = "") -> str:
    return f"{len(filters)}-block UNet{plural} ({'-'.join(map(str, filters))})"


def _common_words(p: dict) -> str:
    parts = [_NORM_WORDS[p["normalization"]]]
    rates = p["dilation_rates"]
    if any(r > 1 for r in rates):
        parts.append(f"dilated bottleneck ({','.join(map(str, rates))})")
    if p["kernel_size"] != 3:
        parts.append(f"kernel {p['kernel_size']}")
    parts.append(f"dropout {p['dropout']:g}" if p["dropout"] > 0 else "no dropout")
    return ", ".join(parts)


def describe(architecture: str, params: Mapping | None) -> str:
    """The variant's features in words, for the comparison table."""
    p = resolve_params(architecture, params)
    common = _common_words(p)
    if architecture == "unet":
        return f"{_unet_words(p['filters'])}, {common}"
    if architecture == "bigrock_binary":
        return f"binary Big Rock {_unet_words(p['filters'])}, {common}"
    if architecture == "stacked":
        return f"2 stacked {_unet_words(p['filters'], 's')} (2nd refines 1st + image), {common}"
    if architecture == "parallel_symmetric":
        return f"2 parallel {_unet_words(p['filters'], 's')} fused by 1x1 conv, {common}"
    if architecture == "parallel_unbalanced":
        return (
            f"parallel {_unet_words(p['filters_a'])} + {_unet_words(p['filters_b'])} "
            f"fused by 1x1 conv, {common}"
        )
    # multipath
    filters = "-".join(map(str, p["filters"]))
    rates = ",".join(map(str, p["dilation_rates"]))
    kernel = f", kernel {p['kernel_size']}" if p["kernel_size"] != 3 else ""
    drop = f"dropout {p['dropout']:g}" if p["dropout"] > 0 else "no dropout"
    return (
        f"{len(p['filters'])}-block Multipath UNet ({filters}): plain/residual/global-context/"
        f"dilated ({rates}) encoders, SE (ratio {p['se_ratio']}) bottleneck, "
        f"{_NORM_WORDS[p['normalization']]}{kernel}, {drop}"
    )


def build_model(
    architecture: str,
    params: Mapping | None = None,
    input_shape: tuple[int, int, int] = (64, 128, 1),
    num_classes: int = 5,
):
    """A `keras.Model` of the named architecture (Keras is imported here, lazily)."""
    p = resolve_params(architecture, params)
    if architecture == "bigrock_binary" and num_classes != 2:
        raise ValueError(
            f"architecture 'bigrock_binary' is the 2-class Big Rock helper; pass num_classes=2, "
            f"got {num_classes}"
        )
    check_depth(p, int(input_shape[0]), int(input_shape[1]))
    from marsseg.models import architectures

    return architectures.BUILDERS[architecture](p, tuple(input_shape), int(num_classes))


def inverse_frequency_weights(
    masks: np.ndarray,
    num_classes: int = 5,
    background_weight: float | None = 0.0,
    max_weight: float | None = None,
) -> np.ndarray:
    """Seed 001's class weights: the inverse of each class's pixel percentage.

    ``w_c = 1 / (100 * count_c / total_pixels)`` over all pixels of `masks` (background included),
    which is the normalisation behind seed 001's ``[0, .0359, .0523, .0663, 9.272]``: their
    weights are 1 / (class share in percent). Classes absent from `masks` get weight 0 (no pixel
    of theirs can enter the loss anyway). Then every weight is capped at `max_weight` (if given)
    and class 0 is set to `background_weight` (if not None; seed 001 used 0).
    """
    masks = np.asarray(masks)
    if masks.size == 0:
        raise ValueError("inverse_frequency_weights needs at least one mask pixel")
    if masks.min() < 0 or masks.max() >= num_classes:
        raise ValueError(f"mask labels must be in 0..{num_classes - 1}")
    counts = np.bincount(masks.astype(np.int64).ravel(), minlength=num_classes)[:num_classes]
    percent = 100.0 * counts / masks.size
    weights = np.zeros(num_classes, dtype=np.float64)
    present = counts > 0
    weights[present] = 1.0 / percent[present]
    if max_weight is not None:
        weights = np.minimum(weights, float(max_weight))
    if background_weight is not None:
        weights[0] = float(background_weight)
    return weights


__all__ = [
    "ARCHITECTURE_NAMES",
    "PARAM_DEFAULTS",
    "build_model",
    "check_depth",
    "describe",
    "inverse_frequency_weights",
    "resolve_params",
]
