"""A real one-node Slurm cluster on this machine, started for the tests and stopped after them.

`SlurmCluster.start(state_dir)` writes /etc/slurm/slurm.conf (this node's CPUs and memory, free
ports, no accounting, no cgroups: proctrack/pgid and task/none, which work in a container),
creates the munge key if there is none, starts munged (unless one already answers), slurmctld
and slurmd in the foreground as children of this process, records their pids and waits until
`sinfo` shows the node idle. Their state, spool, pid and log files live in `state_dir`.
`stop()` cancels the cluster's jobs, ends exactly the daemons that `start()` started, by pid,
and removes the slurm.conf it wrote (a config naming a dead controller slows every Slurm client).

Without root nothing can be started: `SlurmUnavailable` says why (the tests skip). As root, a
missing installation is installed with install_slurm.sh; anything that then goes wrong raises
`SlurmError` (the tests fail).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

INSTALL_SCRIPT = Path(__file__).with_name("install_slurm.sh")
SLURM_CONF = Path("/etc/slurm/slurm.conf")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")
MARKER = "# Written by tests/slurm/cluster.py"
PARTITION = "testq"
BINARIES = (
    "munged",
    "munge",
    "unmunge",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "scancel",
    "sinfo",
    "scontrol",
)
SBIN = ("/usr/sbin", "/sbin", "/usr/bin")


class SlurmUnavailable(Exception):
    """Slurm cannot run here for a reason that is no error of the project (not root): skip."""


class SlurmError(RuntimeError):
    """Slurm should run here but does not: installing or starting it failed."""


def which(name: str) -> str | None:
    """The path of a binary, also in the sbin directories a non-root PATH may lack."""
    found = shutil.which(name)
    if found:
        return found
    for directory in SBIN:
        candidate = Path(directory) / name
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if which(name) is None]


def ensure_installed() -> None:
    """Install Slurm and munge with install_slurm.sh if any binary is missing (root only)."""
    missing = missing_binaries()
    if missing and os.geteuid() != 0:
        raise SlurmUnavailable(
            f"Slurm is not installed (missing {', '.join(missing)}) and installing it needs "
            f"root: run `sudo sh {INSTALL_SCRIPT.relative_to(INSTALL_SCRIPT.parents[2])}`"
        )
    if os.geteuid() != 0:
        raise SlurmUnavailable(
            "not root: starting munged, slurmctld and slurmd for a test cluster needs root"
        )
    if not missing:
        return
    result = subprocess.run(
        ["sh", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False
    )
    still_missing = missing_binaries()
    if result.returncode != 0 or still_missing:
        raise SlurmError(
            f"installing Slurm failed (exit {result.returncode}, missing "
            f"{', '.join(still_missing) or 'nothing'}):\n{result.stdout[-3000:]}"
            f"\n{result.stderr[-3000:]}"
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_hardware() -> dict[str, int]:
    """CPU layout as `slurmd -C` sees it, and RealMemory a bit under MemTotal (in MiB)."""
    hardware = {"CPUs": os.cpu_count() or 1}
    result = subprocess.run(
        [which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, check=False
    )
    if result.returncode == 0:
        first_line = result.stdout.splitlines()[0] if result.stdout else ""
        for key, value in re.findall(r"(\w+)=(\d+)", first_line):
            if key in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore"):
                hardware[key] = int(value)
    meminfo = Path("/proc/meminfo").read_text()
    total_mib = int(re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)[1]) // 1024
    # slurmd drains a node whose RealMemory exceeds what it finds; leave a margin.
    hardware["RealMemory"] = max(total_mib - max(512, total_mib // 20), 256)
    return hardware


def slurm_conf(state_dir: Path, node: str, hardware: dict[str, int], ports: tuple[int, int]):
    layout = " ".join(f"{key}={value}" for key, value in hardware.items())
    return f"""{MARKER} for the tests (tests/test_slurm.py); rewritten on every run.
# One node, no accounting database (sacct does not work), no cgroups (works in a container).
ClusterName=marsseg-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={state_dir}/slurmctld
SlurmdSpoolDir={state_dir}/slurmd
SlurmctldPidFile={state_dir}/slurmctld.pid
SlurmdPidFile={state_dir}/slurmd.pid
SlurmctldLogFile={state_dir}/slurmctld.log
SlurmdLogFile={state_dir}/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Finished jobs stay visible to squeue for 5 minutes: the executor plugin polls squeue.
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmctldTimeout=60
SlurmdTimeout=120
MailProg=/bin/true
NodeName={node} NodeAddr=127.0.0.1 {layout} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _run(*command: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [which(command[0]) or command[0], *command[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def munge_works() -> bool:
    try:
        encoded = _run("munge", "-n", timeout=10)
        if encoded.returncode != 0:
            return False
        decoded = subprocess.run(
            [which("unmunge") or "unmunge"],
            input=encoded.stdout,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return decoded.returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} not readable)"


class SlurmCluster:
    """The daemons of a one-node cluster that this process started (see the module's doc)."""

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir).resolve()
        self.node = socket.gethostname().split(".")[0]
        self.partition = PARTITION
        self.processes: dict[str, subprocess.Popen] = {}
        self.hardware = node_hardware()
        self.wrote_conf = False

    @property
    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes.items()}

    @classmethod
    def start(cls, state_dir: Path, timeout: float = 90) -> SlurmCluster:
        ensure_installed()
        if SLURM_CONF.exists() and MARKER not in SLURM_CONF.read_text(errors="replace"):
            raise SlurmUnavailable(
                f"{SLURM_CONF} exists and was not written by the tests: this machine has its "
                "own Slurm configuration, which the tests will not overwrite"
            )
        cluster = cls(state_dir)
        try:
            cluster._start(timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start(self, timeout: float) -> None:
        for sub in ("slurmctld", "slurmd"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self._start_munge()
        ports = (free_port(), free_port())
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SLURM_CONF.write_text(slurm_conf(self.state_dir, self.node, self.hardware, ports))
        self.wrote_conf = True
        self._spawn("slurmctld", [which("slurmctld"), "-D", "-c", "-i"])
        self._wait(lambda: _run("scontrol", "ping").returncode == 0, "slurmctld answers", timeout)
        self._spawn("slurmd", [which("slurmd"), "-D", "-N", self.node])
        self._wait(self.node_idle, f"node {self.node} is idle in sinfo", timeout)

    def _start_munge(self) -> None:
        if munge_works():
            return  # a munged is already running (the system's): use it, leave it alone
        if not MUNGE_KEY.exists():
            MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
            result = _run("mungekey", "--create", f"--keyfile={MUNGE_KEY}")
            if result.returncode != 0:  # older munge: no mungekey
                MUNGE_KEY.write_bytes(os.urandom(1024))
        try:
            user = pwd.getpwnam("munge")
        except KeyError:
            user = None  # no munge user: run munged as root
        MUNGE_RUN.mkdir(parents=True, exist_ok=True)
        MUNGE_RUN.chmod(0o755)
        owner = (user.pw_uid, user.pw_gid) if user else (0, 0)
        for path in (MUNGE_RUN, MUNGE_KEY.parent, MUNGE_KEY):
            os.chown(path, *owner)
        MUNGE_KEY.chmod(0o400)
        MUNGE_KEY.parent.chmod(0o700)
        # Its log, seed and pid files stay where the package puts them (/var/log/munge, ...):
        # munged insists that their directories belong to its user.
        command = [which("munged"), "--foreground"]
        if user:
            self._spawn("munged", command, user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        else:
            self._spawn("munged", [*command, "--force"])
        self._wait(munge_works, "munged answers", 30)

    def _spawn(self, name: str, command: list[str], **kwargs) -> None:
        output = open(self.state_dir / f"{name}.out", "ab")  # noqa: SIM115 (kept by the daemon)
        self.processes[name] = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a daemon: no terminal signals from the test run
            **kwargs,
        )
        output.close()

    def _wait(self, condition, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise SlurmError(f"{name} exited ({process.returncode}):\n{self.logs(name)}")
            if time.monotonic() > deadline:
                raise SlurmError(f"timed out waiting until {what}:\n{self.logs()}")
            time.sleep(0.5)

    def logs(self, *names: str) -> str:
        names = names or tuple(self.processes)
        parts = []
        for name in names:
            for suffix in (".out", ".log"):
                path = self.state_dir / f"{name}{suffix}"
                if path.exists():
                    parts.append(f"--- {path}\n{_tail(path)}")
        return "\n".join(parts)

    def node_idle(self) -> bool:
        result = _run("sinfo", "--noheader", "--Node", "--format=%T", f"--nodes={self.node}")
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def job_ids(self) -> list[str]:
        result = _run("squeue", "--noheader", "--format=%i")
        return result.stdout.split() if result.returncode == 0 else []

    def stop(self) -> None:
        """Cancel the cluster's jobs, then end the daemons this object started, by pid."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            jobs = self.job_ids()
            if jobs:
                _run("scancel", *jobs)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and any(
                    state in ("RUNNING", "COMPLETING", "PENDING")
                    for state in _run("squeue", "--noheader", "--format=%T").stdout.split()
                ):
                    time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # Left behind, a slurm.conf naming a controller that is gone makes every Slurm client
        # wait for it, and with them every `snakemake` on this machine: the executor plugin
        # runs `scontrol show config` when it is loaded.
        if self.wrote_conf and SLURM_CONF.exists():
            if MARKER in SLURM_CONF.read_text(errors="replace"):
                SLURM_CONF.unlink()
            self.wrote_conf = False
