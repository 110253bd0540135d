#!/usr/bin/env bash
# The whole check: lint, types, then every test (unit and integration against real local
# Airflow and Dagster servers started by the fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" >&2
ruff check src tests example_dags example_dagster benchmarks demo scripts
echo "== mypy (strict, core)" >&2
mypy
echo "== pytest" >&2
exec python -m pytest "$@"
