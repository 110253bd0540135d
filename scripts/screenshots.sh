#!/usr/bin/env bash
# A check in a real browser: runs the demo (Airflow and Dagster on 127.0.0.1) and has headless
# Chromium photograph the Dagster run that an Airflow task started (its "Triggered by" link)
# and the demo's asset page (Materialize enabled). The PNGs go to .ci/out/ (git-ignored; CI
# keeps them as artifacts) and their paths are printed. Installs Debian's chromium if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; then
    echo "screenshots: SKIPPED — Debian's chromium could not be installed here (apt-get needs" \
      "root and the Debian mirror); the browser check did not run" >&2
    exit 0
  fi
fi
out="${TRIGRUN_SCREENSHOTS_DIR:-.ci/out}"
mkdir -p "$out"
exec "${PYTHON:-.venv/bin/python}" demo/run.py --screenshots "$out" "$@"
