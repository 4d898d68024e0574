#!/usr/bin/env bash
# Set up a virtual environment with the project and its test extras, then run the tests.
# Works on a fresh machine with only Python 3.10+ and the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
# Debian packages for the tests that use them, when this machine can install them: real
# Fashion-MNIST, and an X server (Xvfb) with the libraries Qt's X11 plugin needs, so one test opens
# the real window the way a user's desktop does (offscreen hides missing system libraries).
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  wanted=""
  [ -d /usr/share/datasets/fashion-mnist ] || wanted="dataset-fashion-mnist"
  command -v xvfb-run >/dev/null || wanted="$wanted xvfb xauth"
  wanted="$wanted $(.venv/bin/python -m ganstudio.system_libs || true)"
  if [ -n "${wanted// /}" ]; then
    (apt-get install -y -q $wanted || (apt-get update -q && apt-get install -y -q $wanted)) >/dev/null 2>&1 || \
      echo "note: could not install $wanted; the tests that need them will be skipped"
  fi
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
