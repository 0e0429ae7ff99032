#!/usr/bin/env bash
# Runs the Blender add-on tests (tests/addon) on Blender 4.2 LTS, the oldest Blender the add-on
# supports: `bpy==4.2.*` in its own environment, .venv-bpy42 (Python 3.11, numpy<2 as Blender 4.2
# ships). The FlowVQ server and `flowvq generate` the tests start run from the main .venv, where
# torch is (FLOWVQ_SERVER_PYTHON). Idempotent: .venv-bpy42 is re-installed only when this script
# changed. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
venv=${FLOWVQ_BPY42_VENV:-.venv-bpy42}
python=${FLOWVQ_PYTHON:-python3}
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), "bpy 4.2 wheels need Python 3.11"'

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
stamp="$venv/.flowvq-setup"
want=$(sha256sum < scripts/test_bpy42.sh | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$venv/bin/python" -m pip install -q 'bpy==4.2.*' 'numpy<2' requests 'pytest>=8.0' 'pytest-timeout>=2.3'
    echo "$want" > "$stamp"
fi
# test_demo.py is left out: the demo (buildtools.demo) is a main-environment program (scikit-image,
# soundfile, the server) that drives bpy 5.0.1; the add-on code it uses is what the other tests cover.
FLOWVQ_SERVER_PYTHON="$PWD/.venv/bin/python" OMP_NUM_THREADS=1 exec "$venv/bin/python" -m pytest tests/addon \
    --ignore=tests/addon/test_demo.py "$@"
