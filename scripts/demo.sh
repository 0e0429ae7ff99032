#!/usr/bin/env bash
# Sets up .venv, then runs the demo on the built-in defaults (writes ./out/): `flowvq demo` (portrait
# fit, heads, takes.json), then the Blender demo `python -m buildtools.demo` (demo.blend, demo.mp4,
# demo_takes.json, demo_frame.png; see README.md). Extra arguments (--out DIR) go to both steps.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/flowvq demo "$@"
exec .venv/bin/python -m buildtools.demo "$@"
