"""What the rules' scripts do around their one call (marsseg.scripting.logged_to)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

STEP = """
import sys, time
from marsseg.io import atomic_path
from marsseg.scripting import logged_to
with logged_to(sys.argv[1]):
    with atomic_path(sys.argv[2]) as tmp:
        tmp.write_text("half of the output")
        time.sleep(60)
"""


def test_sigterm_mid_write_leaves_no_temporary_file(tmp_path):
    """Slurm's scancel or time limit sends SIGTERM: the step exits through its `finally`
    blocks, so the half-written temporary file beside the output goes too."""
    out, log = tmp_path / "out" / "arrays.npz", tmp_path / "step.log"
    step = subprocess.Popen([sys.executable, "-c", STEP, str(log), str(out)])
    deadline = time.monotonic() + 60
    while not list(out.parent.glob(".arrays.*")):
        if time.monotonic() > deadline or step.poll() is not None:
            step.kill()
            pytest.fail(
                f"the step never started writing: {log.read_text() if log.exists() else ''}"
            )
        time.sleep(0.05)
    step.send_signal(signal.SIGTERM)
    assert step.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(out.parent.iterdir()) == []
    # and the step's log says why it ended (the Slurm log says TIMEOUT or CANCELLED; this is
    # the log a user reads first)
    assert "stopped by SIGTERM" in log.read_text()
