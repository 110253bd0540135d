#!/usr/bin/env bash
# The whole check: lint, types, the package (sdist and wheel built and checked), then every
# test (unit and integration against real local Airflow and Dagster servers started by the
# fixtures), in parallel.
#
# Parallel: pytest-xdist with TRIGRUN_TEST_WORKERS workers (default 3; most tests wait on a
# server or a timer, so one more worker than the 2 cores of the CI machine pays). Each test file
# is one group (its tests run in order on one worker) and every file that uses a live Airflow
# or Dagster server joins one group, started first, so each server starts once
# (tests/conftest.py). TRIGRUN_TEST_WORKERS=0 runs everything in this process, one by one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/prefect-venv.sh  # the live Prefect tests run a pinned Prefect from a venv of its own
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" >&2
ruff check src tests example_dags example_dagster benchmarks demo scripts
echo "== mypy (strict, core)" >&2
mypy
echo "== package (build, twine check --strict, check-wheel-contents)" >&2
scripts/check-package.sh
echo "== pytest" >&2
workers=${TRIGRUN_TEST_WORKERS:-3}
if [ "$workers" = "0" ]; then
  exec python -m pytest "$@"
fi
exec python -m pytest -n "$workers" --dist loadgroup --no-loadscope-reorder "$@"
