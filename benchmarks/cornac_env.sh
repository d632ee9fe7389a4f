#!/usr/bin/env bash
# The isolated Cornac 3.0.1 environment benchmarks/cornac_check.py compares against
# (benchmarks/.venvs/cornac; CORNAC_VENV overrides). Cornac 3.0.1 installs with numpy 2 and needs no
# torch for the models the check runs (MostPop, EASE, MF, PMF, BPR are numpy/Cython).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${CORNAC_VENV:-$here/.venvs/cornac}" exec bash "$here/peer_env.sh" cornac \
    "import cornac; assert cornac.__version__ == '3.0.1'" "cornac==3.0.1"
