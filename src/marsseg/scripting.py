"""What every rule's script does around its one call: send stdout, stderr and logging into the
rule's log file, turn bad input into a short message on the terminal and a non-zero exit, and
turn SIGTERM (Snakemake's or Slurm's stop: scancel, a time limit) into an ordinary exit, so that
the step's temporary files (marsseg.io.atomic_path) are removed on the way out."""

from __future__ import annotations

import logging
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from marsseg.errors import InputError


@contextmanager
def logged_to(log_path: str):
    """Redirect file descriptors 1 and 2 (so TensorFlow's C++ messages too) and `logging` into
    `log_path` for the duration of the block; report an InputError on the real terminal."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.dup(2)
    saved_stdout = os.dup(1)
    previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with open(log_path, "a", buffering=1) as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
            force=True,
        )
        try:
            yield
        except InputError as error:
            logging.error("%s", error)
            os.write(terminal, f"\nERROR: {error}\n(log: {log_path})\n".encode())
            raise SystemExit(1) from None
        except Exception:
            logging.exception("failed")
            raise
        finally:
            signal.signal(signal.SIGTERM, previous_sigterm)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_stdout, 1)
            os.dup2(terminal, 2)
            os.close(saved_stdout)
            os.close(terminal)


def _exit_on_sigterm(signum, frame):
    """Python's default for SIGTERM ends the process on the spot, skipping `finally` blocks."""
    logging.warning(
        "stopped by SIGTERM (scancel, a Slurm time limit or Snakemake): exiting, removing "
        "half-written files; a training resumes from its last checkpoint when run again"
    )
    raise SystemExit(128 + signum)
