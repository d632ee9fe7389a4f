#!/usr/bin/env bash
# The isolated pythae 0.1.2 environment benchmarks/bench_generators.py compares against
# (benchmarks/.venvs/pythae; PYTHAE_VENV overrides). pythae 0.1.2 installs with torch 2.13.0 (CPU),
# numpy 2 and pydantic 2 without pins; torch is installed first so pip does not pull a CUDA build.
# benchmarks/pythae_runner.py runs inside it as a child process.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${PYTHAE_VENV:-$here/.venvs/pythae}" exec bash "$here/peer_env.sh" pythae \
    "import pythae, torch; from importlib.metadata import version; assert version('pythae') == '0.1.2'" \
    "torch==2.13.0" -- "pythae==0.1.2"
