#!/usr/bin/env bash
# Set up a virtual environment with GAN Studio and open the studio on the bundled demo model
# (assets/demo). Extra arguments go to `ganstudio` (a checkpoint, a run directory, --monitor RUN, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
exec .venv/bin/ganstudio "$@"
