#!/usr/bin/env bash
# Set up a virtual environment with the project and its test extras, then run the tests.
# Works on a fresh machine with only Python 3.10+ and the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
# Real Fashion-MNIST for the tests that use it, when this machine can install Debian packages.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -q && apt-get install -y -q dataset-fashion-mnist) >/dev/null 2>&1 || \
    echo "note: could not install dataset-fashion-mnist; its tests will be skipped"
fi
export QT_QPA_PLATFORM=offscreen
set +e
.venv/bin/python -m pytest -q "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$code"
