#!/usr/bin/env bash
# The README's test command: set up, lint, type-check, check the import layers, run the tests.
# Extra arguments go to pytest (e.g. scripts/test.sh -k bilinear).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
echo "== ruff"; ruff check .
echo "== mypy"; mypy
echo "== import-linter"; lint-imports
echo "== docker lint"; hadolint docker/*.Dockerfile && check-jsonschema --builtin-schema vendor.compose-spec docker/compose.yaml
echo "== pytest"; python -m pytest "$@"
