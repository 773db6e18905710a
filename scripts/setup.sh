#!/usr/bin/env bash
# Create .venv in the checkout (once) and install ParetoNAS with its dev tools into it.
# Re-running is cheap: pip only installs what changed in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "ParetoNAS needs Python >= 3.11"'
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.paretonas-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch is pinned to 2.13.0 in pyproject.toml: the CPU wheel on a CPU machine.
  # The ray extra too, so the Ray driver's tests (marker `ray`) run here and in CI.
  .venv/bin/python -m pip install --quiet -e '.[dev,ray]'
  touch "$stamp"
fi
# The dashboard's browser tests drive Debian's Chromium through Playwright (never a downloaded
# browser): install it when it is missing.
if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
  else
    echo "setup: /usr/bin/chromium is missing and apt-get is not available; install Chromium" \
      "for the browser tests (pytest -m browser)" >&2
  fi
fi
