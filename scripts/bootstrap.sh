#!/usr/bin/env bash
# Create .venv and install trigrun with every extra and the development tools (the `dev`
# dependency group of pyproject.toml, PEP 735), pinned by constraints.txt.
# Re-runs the install only when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PY --version 2>&1)" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.trigrun-installed
want=$(cat pyproject.toml constraints*.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "bootstrap: installing trigrun[airflow,dagster] and the dev group (pinned by constraints.txt)" >&2
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet "uv==$(sed -n 's/^uv==//p' constraints.txt)"
fi
# `--group dev`: the PEP 735 group of ./pyproject.toml (tools are not a published extra).
# One constraints file per Python where the pins differ (constraints-3.10.txt), as Airflow does.
pyver=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cons=constraints.txt
if [ -f "constraints-$pyver.txt" ]; then cons="constraints-$pyver.txt"; fi
.venv/bin/uv pip install --quiet --python .venv/bin/python -c "$cons" -e ".[airflow,dagster,dg]" \
  --group dev
echo "$want" > "$stamp"
