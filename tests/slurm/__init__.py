"""A real single-node Slurm cluster for the tests (see cluster.py and install_slurm.sh)."""
