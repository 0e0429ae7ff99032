#!/usr/bin/env bash
# Creates .venv (Python 3.11) with the project and its server, train and dev extras installed.
# Idempotent: re-installs only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${FLOWVQ_VENV:-.venv}
python=${FLOWVQ_PYTHON:-python3}
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), "FlowVQ needs Python 3.11 (bpy 5.0.1 and mediapipe 0.10.21 wheels)"'

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
stamp="$venv/.flowvq-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$venv/bin/python" -m pip install -q --upgrade pip
    # A machine without a GPU takes the CPU build of torch; anyone with CUDA installs theirs first.
    "$venv/bin/python" -c 'import torch' 2>/dev/null || "$venv/bin/python" -m pip install -q torch==2.13.0
    "$venv/bin/python" -m pip install -q -e '.[server,train,dev]'
    echo "$want" > "$stamp"
fi
