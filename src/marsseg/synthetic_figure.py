"""Figure: real training tiles and masks beside synthetic ones (matplotlib, Agg)."""

from __future__ import annotations

import numpy as np

from marsseg.figures import CLASS_CMAP, CLASS_NORM, LABEL_COLOURS, LABEL_NAMES


def _pick(training_set: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n indices: random tiles, one of them with Big Rock where the set has any."""
    masks = np.asarray(training_set[:, 1])
    n = min(n, len(masks))
    idx = list(rng.choice(len(masks), size=n, replace=False))
    rock_pixels = (masks == 4).sum(axis=(1, 2))
    with_rock = np.flatnonzero(rock_pixels > 0)
    if n and len(with_rock) and not any(rock_pixels[i] > 0 for i in idx):
        # a tile where the Big Rock is clearly visible (at least the median rock area)
        clear = with_rock[rock_pixels[with_rock] >= np.median(rock_pixels[with_rock])]
        idx[-1] = int(rng.choice(clear))
    return np.asarray(idx, dtype=int)


def plot_synthetic_vs_real(
    synthetic_training_set: np.ndarray,
    real_training_set: np.ndarray,
    out_png: str,
    n: int = 6,
    seed: int = 0,
) -> None:
    """Save a grid of n real tiles + masks (left) beside n synthetic tiles + masks (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rng = np.random.default_rng(seed)
    real_idx = _pick(real_training_set, n, rng)
    syn_idx = _pick(synthetic_training_set, n, rng)
    rows = max(len(real_idx), len(syn_idx))

    fig, axes = plt.subplots(rows, 4, figsize=(10, 1.35 * rows + 0.8), squeeze=False)
    columns = [
        (real_training_set, real_idx, "real image"),
        (real_training_set, real_idx, "real mask"),
        (synthetic_training_set, syn_idx, "synthetic image"),
        (synthetic_training_set, syn_idx, "synthetic mask"),
    ]
    for col, (data, idx, title) in enumerate(columns):
        for row in range(rows):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if row >= len(idx):
                ax.axis("off")
                continue
            k = int(idx[row])
            if col % 2 == 0:
                ax.imshow(np.asarray(data[k, 0], float), cmap="gray", vmin=0, vmax=255)
                ax.set_ylabel(f"#{k}", fontsize=7)
            else:
                ax.imshow(
                    np.asarray(data[k, 1], float),
                    cmap=CLASS_CMAP,
                    norm=CLASS_NORM,
                    interpolation="nearest",
                )
            if row == 0:
                ax.set_title(title, fontsize=9)
    handles = [
        Patch(color=c, label=f"{i} {name}")
        for i, (c, name) in enumerate(zip(LABEL_COLOURS, LABEL_NAMES, strict=True))
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(out_png, dpi=80)
    plt.close(fig)


def main(argv: list[str]) -> None:
    """python -m marsseg.synthetic_figure REAL_NPZ OUT_PNG: the README's figure, from a
    course-format npz and the synthetic default's generator (seed 0)."""
    from marsseg.io import load_course_npz
    from marsseg.synthetic import generate_course_dataset

    real_npz, out_png = argv
    real = load_course_npz(real_npz)
    real_training_set = np.stack([real["train_images"], real["train_masks"]], axis=1)
    synthetic_training_set, _, _ = generate_course_dataset(seed=0, n_test=1)
    plot_synthetic_vs_real(synthetic_training_set, real_training_set, out_png)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
