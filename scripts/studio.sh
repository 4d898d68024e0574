#!/usr/bin/env bash
# Set up a virtual environment with GAN Studio and open the studio (on the bundled demo model
# once assets/ holds one). Extra arguments go to `ganstudio`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
if [ $# -eq 0 ] && [ -d assets/demo ]; then set -- assets/demo; fi
exec .venv/bin/ganstudio "$@"
