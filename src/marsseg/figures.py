"""The report's figures, one function per figure, each writing one PNG.

They use matplotlib's object API (`Figure`), which renders PNGs with Agg: no display, no pyplot
state. Masks are always drawn with the same colours for the 5 classes (LABEL_COLOURS).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from marsseg import BIG_ROCK, NUM_CLASSES, SCORED_CLASSES
from marsseg.io import atomic_path, load_arrays, load_json
from marsseg.metrics import mean_iou

# Fixed colours for labels 0-4: background, soil, bedrock, sand, big rock.
LABEL_COLOURS = ("#000000", "#c8823c", "#8c8c8c", "#f0dc82", "#e6194b")
LABEL_NAMES = ("background", "soil", "bedrock", "sand", "big rock")
CLASS_CMAP = ListedColormap(LABEL_COLOURS)
CLASS_NORM = BoundaryNorm(np.arange(-0.5, NUM_CLASSES + 0.5), CLASS_CMAP.N)
DPI = 100


def _save(figure: Figure, out_png: str) -> None:
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def _class_legend(figure: Figure) -> None:
    handles = [
        Patch(facecolor=c, edgecolor="grey", label=n)
        for c, n in zip(LABEL_COLOURS, LABEL_NAMES, strict=True)
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=NUM_CLASSES, frameon=False)


def _show_image(ax, image: np.ndarray) -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])


def _show_mask(ax, mask: np.ndarray) -> None:
    ax.imshow(mask, cmap=CLASS_CMAP, norm=CLASS_NORM, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def example_indices(masks: np.ndarray, n: int = 6) -> np.ndarray:
    """n validation images to show: half with the most Big Rock pixels (where any has Big Rock),
    the rest spread evenly over the other images. Deterministic."""
    n = min(n, len(masks))
    rock_pixels = (masks == BIG_ROCK).sum(axis=(1, 2))
    with_rock = np.flatnonzero(rock_pixels > 0)
    rock = with_rock[np.argsort(-rock_pixels[with_rock], kind="stable")][: (n + 1) // 2]
    others = np.setdiff1d(np.arange(len(masks)), rock)
    spread = others[np.linspace(0, len(others) - 1, n - len(rock)).round().astype(int)]
    return np.sort(np.concatenate([rock, spread]))


def plot_predictions(
    val_npz: str, postprocessed: dict[str, str], out_png: str, title: str, n_images: int = 6
) -> np.ndarray:
    """Seed 000's Figure 1: for a few validation images (Big Rock ones included), the image, its
    ground truth and the mask of each post-processing method. `postprocessed` maps a method to
    its npz (key `val`). Returns the indices of the images shown."""
    val = load_arrays(val_npz)
    predicted = {method: load_arrays(path)["val"] for method, path in postprocessed.items()}
    shown = example_indices(val["masks"], n_images)
    columns = [("image", val["images"]), ("ground truth", val["masks"]), *predicted.items()]
    figure = Figure(figsize=(2.2 * len(columns), 1.15 * len(shown) + 1.0), layout="constrained")
    axes = figure.subplots(len(shown), len(columns), squeeze=False)
    for row, index in enumerate(shown):
        for column, (name, arrays) in enumerate(columns):
            ax = axes[row, column]
            if name == "image":
                _show_image(ax, arrays[index])
                ax.set_ylabel(f"#{index}", fontsize=8)
            else:
                _show_mask(ax, arrays[index])
            if row == 0:
                ax.set_title(name, fontsize=9)
    figure.suptitle(title, fontsize=10)
    _class_legend(figure)
    _save(figure, out_png)
    return shown


def plot_training_curves(
    histories: dict[str, str], out_png: str, title: str, target: str = "classes"
) -> Figure:
    """Per-epoch training and validation loss and validation mIoU of each trained model of a
    variant. `histories` maps a line label (e.g. "seed 1") to its Keras history CSV. The
    history's `val_miou` of a binary Big Rock helper (`target` "big_rock") is its Big Rock IoU,
    and the right panel says so."""
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    loss_ax, miou_ax = figure.subplots(1, 2)
    last_epoch = 1
    for number, (label, path) in enumerate(histories.items()):
        history = pd.read_csv(path)
        epoch = history["epoch"] + 1
        last_epoch = max(last_epoch, int(epoch.max()))
        style = {"color": f"C{number % 10}", "marker": "."}  # markers: a 1-epoch run shows
        loss_ax.plot(epoch, history["loss"], **style, label=f"{label} training")
        loss_ax.plot(epoch, history["val_loss"], **style, ls="--", label=f"{label} validation")
        miou_ax.plot(epoch, history["val_miou"], **style, label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    if target == "big_rock":
        miou_ax.set(xlabel="epoch", ylabel="IoU of Big Rock", title="validation Big Rock IoU")
    else:
        miou_ax.set(xlabel="epoch", ylabel="mean IoU (classes 1-4)", title="validation mIoU")
    for ax in (loss_ax, miou_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_xlim(0.5, last_epoch + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    figure.suptitle(title, fontsize=10)
    _save(figure, out_png)
    return figure


def pooled_confusion(score_jsons: list[str]) -> np.ndarray:
    """The sum of the confusion matrices of several score JSONs (e.g. one per seed)."""
    return sum(
        np.asarray(load_json(path)["confusion_matrix"], dtype=np.int64) for path in score_jsons
    )


def plot_confusion_matrices(scores: dict[str, list[str]], out_png: str, title: str) -> None:
    """One panel per post-processing method: the validation confusion matrix pooled over seeds,
    rows the true classes 1-4, columns the predicted 0-4, each row as percentages of its pixels.
    `scores` maps a method to its score JSONs (one per seed)."""
    figure = Figure(figsize=(4.2 * len(scores), 4.2), layout="constrained")
    axes = figure.subplots(1, len(scores), squeeze=False)[0]
    for ax, (method, paths) in zip(axes, scores.items(), strict=True):
        confusion = pooled_confusion(paths)
        rows = confusion[list(SCORED_CLASSES)]
        share = rows / np.maximum(rows.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for (i, j), value in np.ndenumerate(share):
            colour = "white" if value > 0.5 else "black"
            ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=8, color=colour)
        ax.set_xticks(range(NUM_CLASSES), LABEL_NAMES, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(
            range(len(SCORED_CLASSES)), [LABEL_NAMES[c] for c in SCORED_CLASSES], fontsize=8
        )
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{method}: pooled mIoU {mean_iou(confusion):.3f}", fontsize=9)
    figure.suptitle(title, fontsize=10)
    _save(figure, out_png)


def class_shares(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class 0-4: the share of all pixels, and the share of images holding the class."""
    pixels = np.bincount(masks.ravel(), minlength=NUM_CLASSES) / max(masks.size, 1)
    present = np.array([(masks == c).any(axis=(1, 2)).mean() for c in range(NUM_CLASSES)])
    return pixels, present


def plot_class_distribution(labelled_npz: str, filtered_npz: str, out_png: str) -> None:
    """The share of pixels and of images per class in the labelled set, before and after the
    outlier filter."""
    before = load_arrays(labelled_npz)["masks"]
    after = load_arrays(filtered_npz)["masks"]
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    axes = figure.subplots(1, 2)
    x = np.arange(NUM_CLASSES)
    panels = [("pixels", "% of pixels"), ("images holding the class", "% of images")]
    for which, (ax, (name, unit)) in enumerate(zip(axes, panels, strict=True)):
        for offset, masks, hatch, alpha in ((-0.2, before, "//", 0.45), (0.2, after, None, 1.0)):
            percent = 100 * class_shares(masks)[which]
            bars = ax.bar(
                x + offset,
                percent,
                0.4,
                color=LABEL_COLOURS,
                edgecolor="grey",
                hatch=hatch,
                alpha=alpha,
            )
            ax.bar_label(bars, [f"{p:.1f}" for p in percent], fontsize=7)
        ax.legend(
            handles=[
                Patch(
                    facecolor="white",
                    edgecolor="grey",
                    hatch="//",
                    label=f"before ({len(before)} images)",
                ),
                Patch(facecolor="grey", edgecolor="grey", label=f"after ({len(after)} images)"),
            ],
            fontsize=7,
        )
        ax.set_xticks(x, LABEL_NAMES, fontsize=8)
        ax.set_ylabel(unit)
        ax.set_title(f"share of {name}", fontsize=9)
    figure.suptitle("Class distribution before and after outlier filtering", fontsize=10)
    _save(figure, out_png)


def plot_outlier_summary(
    outliers_json: str, labelled_npz: str, out_png: str, max_group_size: int, n_groups: int = 3
) -> Figure:
    """The outlier filter: sizes of the largest groups of identical masks against the threshold,
    and the first image and mask of each dropped group (up to `n_groups`)."""
    summary = load_json(outliers_json)
    labelled = load_arrays(labelled_npz)
    dropped = summary["dropped_groups"][:n_groups]
    columns = max(len(dropped), 1)  # image columns, or one for the words "no group dropped"
    figure = Figure(figsize=(4.5 + 4.0 * columns, 3.6), layout="constrained")
    grid = figure.add_gridspec(2, 1 + columns, width_ratios=[1.4] + [1] * columns)
    sizes_ax = figure.add_subplot(grid[:, 0])
    sizes = summary["largest_groups"]
    colours = ["#e6194b" if size > max_group_size else "#4363d8" for size in sizes]
    sizes_ax.bar(range(1, len(sizes) + 1), sizes, color=colours)
    sizes_ax.axhline(
        max_group_size, color="black", ls="--", lw=1, label=f"max_group_size {max_group_size}"
    )
    sizes_ax.set(
        xlabel="group rank", ylabel="identical masks", title="largest groups of identical masks"
    )
    sizes_ax.legend(fontsize=7)
    for column, group in enumerate(dropped, start=1):
        index = group["first_index"]
        image_ax = figure.add_subplot(grid[0, column])
        _show_image(image_ax, labelled["images"][index])
        image_ax.set_title(f"dropped group of {group['size']} (#{index})", fontsize=8)
        _show_mask(figure.add_subplot(grid[1, column]), labelled["masks"][index])
    if not dropped:
        ax = figure.add_subplot(grid[:, 1])
        ax.axis("off")
        ax.text(0.5, 0.5, "no group dropped", ha="center", va="center")
    figure.suptitle(
        f"Outlier filter: kept {summary['n_kept']} of {summary['n_images']} images, "
        f"dropped {summary['n_dropped']} ({len(summary['dropped_groups'])} group(s) of identical "
        f"masks, {len(summary['dropped_all_background'])} all-background)",
        fontsize=10,
    )
    _save(figure, out_png)
    return figure
