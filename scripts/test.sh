#!/usr/bin/env bash
# Sets up .venv and the Debian speech tools the corpus tests use (espeak-ng, mbrola voices), then
# runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_speech.sh
exec .venv/bin/python -m pytest "$@"
