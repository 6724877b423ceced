"""The data steps of the workflow as plain functions of paths and parameters (no Keras).

Each rule's script calls one of these; the tests call them directly.
"""

from __future__ import annotations

import logging

import numpy as np

from marsseg import metrics
from marsseg.augment import augment
from marsseg.io import load_arrays, load_course_npz, save_arrays, save_json
from marsseg.outliers import find_outliers
from marsseg.postprocess import apply_method
from marsseg.split import split_indices
from marsseg.submission import read_submission, write_submission
from marsseg.tables import best_row

log = logging.getLogger(__name__)


def synthesize(
    out_npz: str, out_test_masks: str, seed: int, n_train: int, n_test: int, n_aliens: int
) -> None:
    """Write the embedded synthetic dataset in the course's layout, hidden test masks apart."""
    from marsseg.synthetic import generate_course_dataset

    training_set, test_set, test_masks = generate_course_dataset(seed, n_train, n_test, n_aliens)
    save_arrays(out_npz, training_set=training_set, test_set=test_set)
    save_arrays(out_test_masks, compressed=True, masks=test_masks)
    log.info("synthetic dataset: %d training and %d test images", len(training_set), len(test_set))


def load_raw(raw_npz: str, out_labelled: str, out_test: str) -> None:
    """Validate a course-format npz and store it as uint8 arrays."""
    data = load_course_npz(raw_npz)
    save_arrays(out_labelled, images=data["train_images"], masks=data["train_masks"])
    save_arrays(out_test, images=data["test_images"])
    log.info(
        "%s: %d labelled and %d test images",
        raw_npz,
        len(data["train_images"]),
        len(data["test_images"]),
    )


def filter_outliers(
    labelled_npz: str,
    out_npz: str,
    out_summary: str,
    max_group_size: int,
    drop_all_background: bool,
) -> None:
    data = load_arrays(labelled_npz)
    keep, report = find_outliers(data["masks"], max_group_size, drop_all_background)
    save_arrays(
        out_npz,
        images=data["images"][keep],
        masks=data["masks"][keep],
        original_index=np.flatnonzero(keep),
    )
    save_json(out_summary, report.as_dict())
    log.info("outlier filter: kept %d of %d images", int(keep.sum()), len(keep))


def split(
    filtered_npz: str,
    out_train: str,
    out_val: str,
    val_fraction: float,
    seed: int,
    stratify_on_big_rock: bool,
) -> None:
    data = load_arrays(filtered_npz)
    train, val = split_indices(data["masks"], val_fraction, seed, stratify_on_big_rock)
    for indices, out in ((train, out_train), (val, out_val)):
        save_arrays(out, **{key: value[indices] for key, value in data.items()})
    log.info("split: %d training, %d validation images", len(train), len(val))


def augment_training(train_npz: str, out_npz: str, steps: list[dict], seed: int) -> None:
    data = load_arrays(train_npz)
    images, masks = augment(data["images"], data["masks"], steps, seed)
    save_arrays(out_npz, images=images, masks=masks)
    log.info(
        "augmentation %s: %d -> %d images",
        [s["name"] for s in steps],
        len(data["images"]),
        len(images),
    )


def postprocess(
    predictions_npz: str, out_npz: str, method: str, all_background_label, tta: bool = False
) -> None:
    """Post-process the validation and test label maps of a prediction (those of its test-time
    augmentation if `tta`)."""
    p = load_arrays(predictions_npz)
    prefix = "tta_" if tta else ""
    save_arrays(
        out_npz,
        compressed=True,
        **{
            split_name: apply_method(
                method,
                p[f"{split_name}_{prefix}labels"],
                p[f"{split_name}_{prefix}labels_no_background"],
                all_background_label,
            )
            for split_name in ("val", "test")
        },
    )


def score(postprocessed_npz: str, val_npz: str, out_json: str) -> None:
    predicted = load_arrays(postprocessed_npz)["val"]
    truth = load_arrays(val_npz)["masks"]
    result = metrics.score(truth, predicted)
    save_json(out_json, result)
    log.info("validation mean IoU %.4f", result["mean_iou"])


def submission(
    table_csv: str, postprocessed: dict, out_csv: str, variant: str | None = None
) -> None:
    """The course CSV of the best row of the comparison table (of `variant`'s rows, if given):
    its test masks, from `postprocessed`: (variant, tta "on"/"off", method) -> the label maps
    of that row (the rule gives its first seed's)."""
    best = best_row(table_csv, variant)
    source = postprocessed[best["variant"], best["tta"], best["postprocessing"]]
    write_submission(out_csv, load_arrays(source)["test"])
    log.info("submission from %s", source)


def score_submission(submission_csv: str, test_masks_npz: str, out_json: str) -> None:
    """Score a submission CSV against the hidden synthetic test masks, like a leaderboard."""
    result = metrics.score(load_arrays(test_masks_npz)["masks"], read_submission(submission_csv))
    save_json(out_json, result)
    log.info("submission mean IoU on the hidden test masks %.4f", result["mean_iou"])
