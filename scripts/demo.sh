#!/usr/bin/env bash
# The README's run command: set up, then run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/paretonas demo "$@"
