#!/bin/sh
# Install a single-node Slurm (controller, node daemon, client tools and munge) from the
# distribution's packages, for tests/test_slurm.py. Idempotent: does nothing when the binaries
# are already there. Without root it says why and exits 0, and the Slurm tests then skip with
# that reason; as root, a failed installation exits non-zero (and the tests then fail).
# Usage: sh tests/slurm/install_slurm.sh        (make test runs it)
set -eu

missing=""
for binary in slurmctld slurmd sbatch squeue scancel sinfo munged; do
    if ! command -v "$binary" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$binary" ]; then
        missing="$missing $binary"
    fi
done
if [ -z "$missing" ]; then
    echo "install_slurm: Slurm and munge are already installed."
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install_slurm: not root, so not installing Slurm (missing:$missing);" \
        "the Slurm tests will be skipped. Run this script as root to enable them."
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_slurm: no apt-get on this machine, cannot install Slurm (missing:$missing)." >&2
    exit 1
fi

echo "install_slurm: installing slurmctld slurmd slurm-client munge (missing:$missing) ..."
export DEBIAN_FRONTEND=noninteractive
# The packages' maintainer scripts must not start daemons here: the tests start their own.
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=yes
fi
status=0
{
    apt-get update -qq &&
        apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge
} >/tmp/install_slurm.log 2>&1 || status=$?
if [ -n "$created_policy" ]; then
    rm -f "$policy"
fi
if [ "$status" -ne 0 ]; then
    tail -n 40 /tmp/install_slurm.log >&2
    echo "install_slurm: apt-get failed ($status); full log in /tmp/install_slurm.log" >&2
    exit "$status"
fi
echo "install_slurm: done (slurmctld $(dpkg-query -W -f='${Version}' slurmctld))."
