"""Run the real workflow (the Snakemake CLI) in a temporary working directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "tests" / "configs" / "tiny.yaml"


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The Snakemake CLI on the repository's Snakefile, with `workdir` as working directory."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]


def snakemake_environment() -> dict[str, str]:
    """This environment, with the virtualenv's bin first on PATH (as `make` sets it)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def snakemake(
    workdir: Path, *args: str, config: Path | None = TINY_CONFIG, timeout=900, check=True
) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's Snakefile with `workdir` as working directory.

    The config file is copied into the working directory as config.yaml, the file the
    Snakefile reads, exactly as a user would place theirs.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if config is not None:
        shutil.copy(config, workdir / "config.yaml")
    result = subprocess.run(
        snakemake_command(workdir, *args),
        cwd=workdir,
        env=snakemake_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}"
            f"\n{result.stderr[-6000:]}"
        )
    return result
