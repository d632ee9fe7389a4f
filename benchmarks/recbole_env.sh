#!/usr/bin/env bash
# The isolated RecBole 1.2.1 environment the recommender benchmark compares against
# (benchmarks/.venvs/recbole; RECBOLE_VENV overrides). RecBole 1.2.1 needs old pins: it uses
# np.float_ (numpy < 2) and its LightGCN/sparse code needs scipy 1.11; torch is installed first so
# pip does not pull a CUDA build. benchmarks/recbole_runner.py runs inside it as a subprocess.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${RECBOLE_VENV:-$here/.venvs/recbole}" exec bash "$here/peer_env.sh" recbole \
    "import recbole, torch; assert recbole.__version__ == '1.2.1'" \
    "torch==2.13.0" -- "recbole==1.2.1" "numpy<2" "pandas==2.2.*" "scipy==1.11.*"
