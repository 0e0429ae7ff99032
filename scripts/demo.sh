#!/usr/bin/env bash
# Sets up .venv, then runs the demo on the built-in defaults (writes ./out/). Extra arguments go to `flowvq demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/flowvq demo "$@"
