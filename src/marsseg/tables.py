"""The comparison table: one row per variant x test-time augmentation x post-processing method,
mean ± std over seeds."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from marsseg import CLASS_NAMES, SCORED_CLASSES
from marsseg.io import atomic_path, load_json

IOU_COLUMNS = [f"iou_{CLASS_NAMES[c]}" for c in SCORED_CLASSES]
TITLE = "Comparison of variants (validation split, course-exact mean IoU over classes 1-4)"


def _peak_rss_mb(benchmark_tsv: str) -> float:
    """Peak RSS (MB) from a Snakemake benchmark file (NaN where Snakemake wrote NA: a job too
    short to be sampled)."""
    return float(pd.read_csv(benchmark_tsv, sep="\t").iloc[0]["max_rss"])


def _highest(values) -> float:
    """The largest of the values that are numbers (NaN if none is)."""
    return max((v for v in values if not math.isnan(v)), default=float("nan"))


def _number(value) -> float:
    """A score from a JSON file: null (an IoU with nothing to score) is NaN."""
    return float("nan") if value is None else float(value)


def read_record(record: dict) -> dict:
    """One (variant, seed, tta, method) result from its score JSON, member infos and benchmarks."""
    score = load_json(record["score"])
    infos = [load_json(path) for path in record["infos"]]
    row = {
        "variant": record["variant"],
        "features": record["features"],
        "tta": record["tta"],
        "postprocessing": record["method"],
        "seed": record["seed"],
        "miou": _number(score["mean_iou"]),
        "parameters": sum(info["parameter_count"] for info in infos),
        "epochs": sum(info["epochs_run"] for info in infos),
        "train_seconds": sum(info["train_seconds"] for info in infos),
        "train_peak_mb": _highest(map(_peak_rss_mb, record["benchmarks"])),
    }
    for c, column in zip(SCORED_CLASSES, IOU_COLUMNS, strict=True):
        row[column] = _number(score["per_class_iou"][str(c)])
    return row


def comparison_table(records: list[dict]) -> pd.DataFrame:
    """Aggregate per-seed rows into mean ± std per variant x tta x method, best mIoU first."""
    per_seed = pd.DataFrame([read_record(r) for r in records])
    groups = per_seed.groupby(["variant", "tta", "postprocessing"], sort=False)
    table = groups.agg(
        features=("features", "first"),
        n_seeds=("seed", "nunique"),
        miou_mean=("miou", "mean"),
        miou_std=("miou", lambda s: float(np.std(s, ddof=1)) if len(s) > 1 else float("nan")),
        **{f"{c}_mean": (c, "mean") for c in IOU_COLUMNS},
        parameters=("parameters", "first"),
        epochs_mean=("epochs", "mean"),
        train_seconds_mean=("train_seconds", "mean"),
        train_peak_mb=("train_peak_mb", "max"),
    ).reset_index()
    return table.sort_values("miou_mean", ascending=False, kind="stable").reset_index(drop=True)


def _fmt(value, digits: int = 3) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


HEADER = [
    "variant",
    "features",
    "TTA",
    "post-processing",
    "mIoU",
    "soil",
    "bedrock",
    "sand",
    "big rock",
    "parameters",
    "epochs",
    "train s",
    "peak MB",
]


def display_rows(table: pd.DataFrame) -> list[list[str]]:
    """The table's cells for people: mIoU as mean ± std (n seeds), per-class IoU, cost."""
    rows = []
    for row in table.itertuples(index=False):
        spread = "" if math.isnan(row.miou_std) else f" ± {row.miou_std:.3f}"
        rows.append(
            [
                row.variant,
                row.features,
                row.tta,
                row.postprocessing,
                f"{_fmt(row.miou_mean)}{spread} (n={row.n_seeds})",
                *(_fmt(getattr(row, f"{c}_mean")) for c in IOU_COLUMNS),
                f"{row.parameters:,}",
                _fmt(row.epochs_mean, 1),
                _fmt(row.train_seconds_mean, 0),
                _fmt(row.train_peak_mb, 0),
            ]
        )
    return rows


def to_markdown(table: pd.DataFrame) -> str:
    """A Markdown table for people (see `display_rows`)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(str(c) for c in cells) + " |" for cells in display_rows(table)]
    return "\n".join(lines) + "\n"


def to_html(table: pd.DataFrame, title: str) -> str:
    """A self-contained HTML page with the same cells as the Markdown table (for the report)."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in HEADER)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in cells) + "</tr>\n"
        for cells in display_rows(table)
    )
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse}"
        " th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}</style></head>\n"
        f"<body><h3>{html.escape(title)}</h3>\n<table><thead><tr>{head}</tr></thead>\n"
        f"<tbody>\n{body}</tbody></table></body></html>\n"
    )


def write_comparison(records: list[dict], out_csv: str, out_md: str, out_html: str) -> pd.DataFrame:
    table = comparison_table(records)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out_md) as tmp:
        tmp.write_text(f"# {TITLE}\n\n" + to_markdown(table))
    with atomic_path(out_html) as tmp:
        tmp.write_text(to_html(table, TITLE))
    return table


def best_row(table_csv: str, variant: str | None = None) -> dict:
    """The variant, test-time augmentation ("on"/"off") and method with the highest mean
    validation mIoU (of `variant`'s rows if given). Cells are read as written: pandas would
    read a variant named NA, null or None as NaN, and one named True as a boolean."""
    table = pd.read_csv(table_csv, dtype=str, keep_default_na=False)
    if variant is not None:
        table = table[table.variant == variant]
        if table.empty:
            raise ValueError(f"{table_csv} has no row of variant '{variant}'")
    return table.iloc[0][["variant", "tta", "postprocessing"]].to_dict()
