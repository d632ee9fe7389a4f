#!/usr/bin/env bash
# Build (once) the isolated RecBole 1.2.1 environment the recommender benchmark compares against.
#
#   bash benchmarks/recbole_env.sh            # creates benchmarks/.venvs/recbole (git-ignored)
#   RECBOLE_VENV=/some/path bash benchmarks/recbole_env.sh
#
# RecBole 1.2.1 needs old pins: it uses np.float_ (numpy < 2), its LightGCN/sparse code needs
# scipy 1.11, and torch is installed first so pip does not pull a CUDA build. It is kept out of the
# mmwork environment on purpose: benchmarks/recbole_runner.py runs inside it as a subprocess.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${RECBOLE_VENV:-$here/.venvs/recbole}"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import recbole, torch; assert recbole.__version__ == '1.2.1'" 2>/dev/null; then
    echo "RecBole environment ready: $venv"
    exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "torch==2.13.0"
"$venv/bin/pip" install --quiet "recbole==1.2.1" "numpy<2" "pandas==2.2.*" "scipy==1.11.*"
"$venv/bin/python" -c "import recbole, torch, numpy, scipy; print('recbole', recbole.__version__, 'torch', torch.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"
echo "RecBole environment ready: $venv"
