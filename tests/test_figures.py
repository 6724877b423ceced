"""The report's figures: what they pick and count, and that each writes a PNG of its size."""

import json

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from marsseg import figures
from marsseg.io import save_arrays, save_json


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_examples_include_the_images_with_most_big_rock():
    masks = np.ones((10, 4, 4), dtype=np.uint8)
    masks[3, :2] = 4  # 8 Big Rock pixels
    masks[7, 0] = 4  # 4
    masks[8, 0, 0] = 4  # 1
    shown = figures.example_indices(masks, n=4)
    assert list(shown) == [0, 3, 7, 9]  # the 2 rockiest, then the others' first and last
    assert list(figures.example_indices(masks, n=20)) == list(range(10))


def test_class_shares_by_hand():
    masks = np.array([[[0, 1], [1, 1]], [[2, 2], [2, 4]]], dtype=np.uint8)
    pixels, present = figures.class_shares(masks)
    np.testing.assert_allclose(pixels, [1 / 8, 3 / 8, 3 / 8, 0, 1 / 8])
    np.testing.assert_allclose(present, [0.5, 0.5, 0.5, 0, 0.5])


def test_confusion_matrices_are_pooled_over_seeds(tmp_path):
    first, second = np.arange(25).reshape(5, 5), np.ones((5, 5), dtype=int)
    for name, matrix in (("seed1.json", first), ("seed2.json", second)):
        save_json(tmp_path / name, {"confusion_matrix": matrix.tolist()})
    pooled = figures.pooled_confusion([tmp_path / "seed1.json", tmp_path / "seed2.json"])
    np.testing.assert_array_equal(pooled, first + second)


@pytest.fixture
def data(tmp_path, rng):
    images = rng.integers(0, 256, (8, 64, 128), dtype=np.uint8)
    masks = rng.integers(0, 5, (8, 64, 128), dtype=np.uint8)
    save_arrays(tmp_path / "labelled.npz", images=images, masks=masks)
    save_arrays(tmp_path / "filtered.npz", images=images[2:], masks=masks[2:])
    return tmp_path, images, masks


def test_every_figure_writes_a_png_of_its_size(data, rng):
    tmp_path, images, masks = data
    methods = ["none", "no_background", "nearest_label"]
    postprocessed, scores, histories = {}, {}, {}
    for method in methods:
        postprocessed[method] = tmp_path / f"{method}.npz"
        save_arrays(postprocessed[method], val=masks, test=masks[:2])
        scores[method] = [tmp_path / f"{method}_{seed}.json" for seed in (1, 2)]
        for path in scores[method]:
            matrix = rng.integers(0, 100, (5, 5))
            save_json(path, {"confusion_matrix": matrix.tolist()})
    for seed in (1, 2):
        histories[f"seed {seed}"] = tmp_path / f"history{seed}.csv"
        histories[f"seed {seed}"].write_text(
            "epoch,epoch_seconds,loss,val_loss,val_miou\n0,1.0,0.9,1.0,0.2\n1,1.0,0.7,0.8,0.3\n"
        )
    save_json(
        tmp_path / "outliers.json",
        {
            "n_images": 8,
            "n_kept": 6,
            "n_dropped": 2,
            "largest_groups": [2, 1, 1],
            "dropped_groups": [{"size": 2, "first_index": 0}],
            "dropped_all_background": [],
        },
    )
    out = tmp_path / "figures"
    shown = figures.plot_predictions(
        tmp_path / "labelled.npz", postprocessed, out / "predictions.png", "title", n_images=4
    )
    assert len(shown) == 4
    assert png_size(out / "predictions.png") == (1100, 560)  # 5 columns, 4 rows
    figures.plot_training_curves(histories, out / "curves.png", "title")
    assert png_size(out / "curves.png") == (1000, 360)
    figures.plot_confusion_matrices(scores, out / "confusion.png", "title")
    assert png_size(out / "confusion.png") == (1260, 420)  # 3 methods
    figures.plot_class_distribution(
        tmp_path / "labelled.npz", tmp_path / "filtered.npz", out / "c.png"
    )
    assert png_size(out / "c.png") == (1000, 380)
    outliers = tmp_path / "outliers.json"
    figure = figures.plot_outlier_summary(outliers, tmp_path / "labelled.npz", out / "o.png", 1)
    assert png_size(out / "o.png") == (850, 360)
    assert figure.get_suptitle() == (
        "Outlier filter: kept 6 of 8 images, dropped 2 (1 group(s) of identical masks, "
        "0 all-background)"
    )
    sizes_ax, image_ax = figure.axes[:2]
    red, blue = to_rgba("#e6194b"), to_rgba("#4363d8")
    assert [bar.get_facecolor() for bar in sizes_ax.patches] == [red, blue, blue]  # 2 > 1
    assert image_ax.get_title() == "dropped group of 2 (#0)"
    summary = json.loads(outliers.read_text()) | {"dropped_groups": [], "n_dropped": 0}
    save_json(outliers, summary)  # nothing dropped: the figure says so instead of images
    figure = figures.plot_outlier_summary(outliers, tmp_path / "labelled.npz", out / "none.png", 5)
    assert png_size(out / "none.png") == (850, 360)
    assert [text.get_text() for text in figure.axes[1].texts] == ["no group dropped"]


def test_training_curves_name_the_score_the_history_holds(tmp_path):
    """A Big Rock helper's val_miou is the IoU of Big Rock, not a mean over classes 1-4."""
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,val_loss,val_miou\n0,0.9,1.0,0.2\n1,0.7,0.8,0.3\n")
    labels = {}
    for target in ("classes", "big_rock"):
        figure = figures.plot_training_curves(
            {"seed 1": history}, tmp_path / f"{target}.png", "title", target=target
        )
        miou_ax = figure.axes[1]
        labels[target] = (miou_ax.get_title(), miou_ax.get_ylabel())
    assert labels["classes"] == ("validation mIoU", "mean IoU (classes 1-4)")
    assert labels["big_rock"] == ("validation Big Rock IoU", "IoU of Big Rock")
