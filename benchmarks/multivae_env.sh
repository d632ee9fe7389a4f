#!/usr/bin/env bash
# The isolated MultiVae 1.0.3 environment benchmarks/cross_modal.py compares against
# (benchmarks/.venvs/multivae; MULTIVAE_VENV overrides). MultiVae needs pythae and torchvision; PyPI's
# torchvision wheels are CUDA builds that will not load next to the CPU torch 2.13.0, so this venv takes
# the unpinned (CUDA) torch with its matching torchvision (several GB; it runs on the CPU), then multivae.
# benchmarks/multivae_runner.py runs inside it as a child process.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${MULTIVAE_VENV:-$here/.venvs/multivae}" exec bash "$here/peer_env.sh" multivae \
    "import multivae, torch, torchvision; from importlib.metadata import version; assert version('multivae') == '1.0.3'" \
    torch torchvision -- "multivae==1.0.3"
