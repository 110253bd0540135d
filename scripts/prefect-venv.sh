#!/usr/bin/env bash
# Create the Prefect 3 venv the live Prefect tests use (tests/fixtures/prefect_server.py):
# its own venv, never the project's (Prefect and Airflow pin different versions of shared
# dependencies). Pinned by constraints-prefect.txt. Re-runs only when the pins changed.
#   TRIGRUN_PREFECT_VENV  where to create it (default: .venv-prefect in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TRIGRUN_PREFECT_VENV:-.venv-prefect}
UV=${UV:-}
if [ -z "$UV" ]; then
  if [ -x .venv/bin/uv ]; then UV=.venv/bin/uv; else UV=uv; fi
fi
stamp="$VENV/.trigrun-prefect-installed"
want=$(sha256sum constraints-prefect.txt | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "prefect-venv: installing prefect (pinned by constraints-prefect.txt) into $VENV" >&2
"$UV" venv --quiet --allow-existing --python 3.11 "$VENV"
"$UV" pip install --quiet --python "$VENV/bin/python" -c constraints-prefect.txt \
  "prefect==$(sed -n 's/^prefect==//p' constraints-prefect.txt)"
echo "$want" > "$stamp"
