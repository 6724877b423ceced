"""The memory probe's peak is its own process's, not the process that started it."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MIB = 2**20


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux's VmHWM")
def test_peak_rss_is_the_probes_own_not_its_parents():
    held_by_parent = np.ones(512 * MIB, dtype=np.uint8)  # resident here when the probe forks
    probe = (
        "import numpy as np; from marsseg.memory_probe import peak_rss_mib; "
        f"own = np.ones(256 * {MIB}, dtype=np.uint8); print(peak_rss_mib())"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    peak = float(done.stdout.split()[-1])
    del held_by_parent  # the parent held it until here, while the probe ran
    assert 256 <= peak < 450  # its 256 MiB and Python's, not the parent's 512 MiB
