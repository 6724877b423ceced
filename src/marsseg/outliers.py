"""The outlier ("alien") filter: drop every group of identical masks larger than a threshold.

The course file plants 110 images with a cartoon alien that all share one mask. Grouping masks by a
hash of their bytes finds that group whatever the alien looks like; the threshold keeps the small
groups of genuine duplicates (and the all-background masks) that the real data has.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from marsseg.errors import InputError


@dataclass(frozen=True)
class OutlierReport:
    n_images: int
    n_groups: int  # distinct masks
    largest_groups: list[int]  # sizes of the largest groups of identical masks, largest first
    dropped_groups: list[dict]  # one entry per dropped group: size and first index
    dropped_indices: list[int]
    dropped_all_background: list[int]

    @property
    def n_dropped(self) -> int:
        return len(self.dropped_indices) + len(self.dropped_all_background)

    def as_dict(self) -> dict:
        return {
            "n_images": self.n_images,
            "n_kept": self.n_images - self.n_dropped,
            "n_dropped": self.n_dropped,
            "n_distinct_masks": self.n_groups,
            "largest_groups": self.largest_groups,
            "dropped_groups": self.dropped_groups,
            "dropped_indices": self.dropped_indices,
            "dropped_all_background": self.dropped_all_background,
        }


def mask_groups(masks: np.ndarray) -> dict[str, list[int]]:
    """Map the hash of each distinct mask to the indices of the images that carry it."""
    groups: dict[str, list[int]] = {}
    for index, mask in enumerate(np.ascontiguousarray(masks, dtype=np.uint8)):
        digest = hashlib.blake2b(mask.tobytes(), digest_size=16).hexdigest()
        groups.setdefault(digest, []).append(index)
    return groups


def find_outliers(
    masks: np.ndarray, max_group_size: int, drop_all_background: bool = False
) -> tuple[np.ndarray, OutlierReport]:
    """Return a boolean keep-mask over the images and a report of what was dropped."""
    if max_group_size < 1:
        raise InputError(
            f"outliers.max_group_size is {max_group_size}; it must be at least 1. "
            "Fix: set it above the size of genuine duplicate groups (the default 100 drops only "
            "the course's 110 aliens)."
        )
    groups = mask_groups(masks)
    keep = np.ones(len(masks), dtype=bool)
    dropped_groups = []
    for indices in groups.values():
        if len(indices) > max_group_size:
            keep[indices] = False
            dropped_groups.append({"size": len(indices), "first_index": indices[0]})
    dropped_indices = np.flatnonzero(~keep).tolist()
    dropped_all_background: list[int] = []
    if drop_all_background:
        all_background = ~masks.reshape(len(masks), -1).any(axis=1)
        dropped_all_background = np.flatnonzero(all_background & keep).tolist()
        keep &= ~all_background
    report = OutlierReport(
        n_images=len(masks),
        n_groups=len(groups),
        largest_groups=sorted((len(v) for v in groups.values()), reverse=True)[:10],
        dropped_groups=sorted(dropped_groups, key=lambda g: g["first_index"]),
        dropped_indices=dropped_indices,
        dropped_all_background=dropped_all_background,
    )
    if not keep.any():
        raise InputError(
            f"the outlier filter dropped all {len(masks)} images (groups of identical masks larger "
            f"than {max_group_size}{', and all-background masks' if drop_all_background else ''}). "
            "Fix: raise outliers.max_group_size"
            f"{' or set outliers.drop_all_background to false' if drop_all_background else ''}."
        )
    return keep, report
