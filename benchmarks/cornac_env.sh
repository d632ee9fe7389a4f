#!/usr/bin/env bash
# Build (once) the isolated Cornac 3.0.1 environment that benchmarks/cornac_check.py compares against.
#
#   bash benchmarks/cornac_env.sh             # creates benchmarks/.venvs/cornac (git-ignored)
#   CORNAC_VENV=/some/path bash benchmarks/cornac_env.sh
#
# Cornac 3.0.1 installs with numpy 2 and needs no torch for the models the check runs (MostPop,
# EASE, MF, PMF, BPR are numpy/Cython). It is kept out of the mmwork environment on purpose.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${CORNAC_VENV:-$here/.venvs/cornac}"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import cornac; assert cornac.__version__ == '3.0.1'" 2>/dev/null; then
    echo "Cornac environment ready: $venv"
    exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "cornac==3.0.1"
"$venv/bin/python" -c "import cornac, numpy; print('cornac', cornac.__version__, 'numpy', numpy.__version__)"
echo "Cornac environment ready: $venv"
