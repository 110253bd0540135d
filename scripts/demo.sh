#!/usr/bin/env bash
# The README's main job: trigrun end to end between local Airflow and Dagster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python demo/run.py "$@"
