#!/usr/bin/env bash
# Build (once) an isolated virtual environment for a peer library the benchmarks compare against;
# peers are never mmwork dependencies. Used by recbole_env.sh and cornac_env.sh.
#
#   bash benchmarks/peer_env.sh NAME 'PYTHON CHECK' PIP_ARGS... [-- MORE_PIP_ARGS...]
#
# The venv is benchmarks/.venvs/NAME (git-ignored; $VENV overrides). If the check already passes
# there, nothing is installed. Each group of pip arguments is one install, in order (so torch can
# come first and pip never pulls a CUDA build).
set -euo pipefail
name="$1"; check="$2"; shift 2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VENV:-$here/.venvs/$name}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "$name environment ready: $venv"
    exit 0
fi
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
group=()
for arg in "$@" --; do
    if [ "$arg" = "--" ]; then
        [ ${#group[@]} -gt 0 ] && "$venv/bin/pip" install --quiet "${group[@]}"
        group=()
    else
        group+=("$arg")
    fi
done
"$venv/bin/python" -c "$check"
echo "$name environment ready: $venv"
