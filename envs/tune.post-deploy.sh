#!/usr/bin/env bash
# Runs inside the new conda env: install the workflow's own package (src/marsseg) into it.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e "$(dirname "${BASH_SOURCE[0]}")/.."
