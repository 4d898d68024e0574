#!/usr/bin/env bash
# Set up a virtual environment with GAN Studio and open the studio on the bundled demo model
# (assets/demo). Extra arguments go to `ganstudio` (a checkpoint, a run directory, --monitor RUN, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Install only when .venv is new or the package's description changed (a reinstall costs ~10 s).
stamp=".venv/.installed-$(cat pyproject.toml setup.py | sha256sum | cut -c1-16)"
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e .
  rm -f .venv/.installed-* && touch "$stamp"
fi
# Qt's X11 plugin needs system libraries a bare machine may lack; Qt's own message names the
# wrong one, so look at the plugin's links and install (as root with apt) or name what is missing.
platform=${QT_QPA_PLATFORM:-}
if [ -n "${DISPLAY:-}" ] && { [ -z "$platform" ] || [ "$platform" = xcb ]; }; then
  if ! missing=$(.venv/bin/python -m ganstudio.system_libs); then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      echo "installing system libraries for Qt's X11 support: $missing"
      (apt-get install -y -q $missing || (apt-get update -q && apt-get install -y -q $missing)) >/dev/null
    else
      echo "GAN Studio needs these system packages for Qt's X11 window support: $missing" >&2
      echo "install them (e.g. sudo apt-get install $missing) and run this again" >&2
      exit 1
    fi
  fi
fi
exec .venv/bin/ganstudio "$@"
