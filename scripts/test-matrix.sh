#!/usr/bin/env bash
# The compatibility matrix: trigrun on every Airflow minor, Python and Dagster it says it
# supports, each row in a venv of its own. Rows:
#   airflow-3.0 .. airflow-3.3  Python 3.11, apache-airflow==<latest patch> resolved as of that
#                               release (uv --exclude-newer <release day>: Airflow's constraint
#                               files cannot be fetched here); the Airflow tests that need no
#                               live server, tests/airflow/test_versions.py (a deferrable
#                               dag.test() with a secret:// header) among them
#   python-3.10/3.12/3.13       the core tests, in a venv of the whole stack (Airflow, Dagster)
#                               installed with that Python's constraints file
#                               (constraints-3.X.txt where pins differ, else constraints.txt)
#   dagster-1.12                the Dagster tests that need no live server
# A machine without a row's interpreter skips that row and says so. Venvs are cached by a hash
# of what they install, under $TRIGRUN_MATRIX_CACHE (default ~/.cache/trigrun-matrix). The
# tested-versions table goes to .tmp/matrix/table.md and into README.md between its markers.
# Usage: scripts/test-matrix.sh [row ...]   (TRIGRUN_MATRIX_JOBS=2 rows at a time)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${TRIGRUN_MATRIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/trigrun-matrix}
JOBS=${TRIGRUN_MATRIX_JOBS:-2}
OUT=$ROOT/.tmp/matrix
rm -rf "$OUT"
mkdir -p "$OUT" "$CACHE"

# Core and test dependencies of every row (the ranges of pyproject.toml; a row's constraints or
# --exclude-newer pick the versions).
CORE=("httpx>=0.27,<1" "pydantic>=2.7,<3" "croniter>=2.0" "PyYAML>=6.0" "Jinja2>=3.1"
      "aiohttp>=3.10")
TESTS=(pytest pytest-httpx pytest-asyncio pytest-timeout hypothesis jsonschema cryptography
       openapi-core)
AIRFLOW_TESTS=(tests/airflow -m "not integration")
DAGSTER_TESTS=(tests/dagster -m "not integration")
CORE_TESTS=(tests/core)  # its integration tests start local HTTP servers only

# name | python | what to install | exclude-newer (release day + 1) | tests
ROWS=(
  "airflow-3.0|3.11|apache-airflow==3.0.6|2025-08-30|airflow"
  "airflow-3.1|3.11|apache-airflow==3.1.8|2026-03-12|airflow"
  "airflow-3.2|3.11|apache-airflow==3.2.2|2026-05-30|airflow"
  "airflow-3.3|3.11|apache-airflow==3.3.2|2026-09-18|airflow"
  "python-3.10|3.10|apache-airflow dagster dagster-webserver dagster-dg-cli|constraints|core"
  "python-3.12|3.12|apache-airflow dagster dagster-webserver dagster-dg-cli|constraints|core"
  "python-3.13|3.13|apache-airflow dagster dagster-webserver dagster-dg-cli|constraints|core"
  "dagster-1.12|3.11|dagster==1.12.22 dagster-webserver==1.12.22 dagster-dg-cli==1.12.22|2026-04-03|dagster"
)

uv_bin() {
  if [ -x "$ROOT/.venv/bin/uv" ]; then echo "$ROOT/.venv/bin/uv"; return; fi
  if command -v uv >/dev/null 2>&1; then command -v uv; return; fi
  if [ ! -x "$CACHE/uv/bin/uv" ]; then
    python3 -m venv "$CACHE/uv" >&2
    "$CACHE/uv/bin/python" -m pip install --quiet "uv==$(sed -n 's/^uv==//p' constraints.txt)" >&2
  fi
  echo "$CACHE/uv/bin/uv"
}
UV=$(uv_bin)

find_python() {  # an interpreter of version $1 (X.Y), or nothing
  local want=$1 cand
  for cand in "python$want" \
      "$(pyenv root 2>/dev/null)/versions/$want"*/bin/python \
      "$HOME/.pyenv/versions/$want"*/bin/python python3; do
    if command -v "$cand" >/dev/null 2>&1 && \
        [ "$("$cand" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]; then
      command -v "$cand"; return
    fi
  done
}

constraints_for() {  # the constraints file of Python $1
  if [ -f "constraints-$1.txt" ]; then echo "constraints-$1.txt"; else echo constraints.txt; fi
}

run_row() {
  local name=$1 pyver=$2 pkgs=$3 pin=$4 kind=$5
  local log=$OUT/$name.log result=$OUT/$name.result
  local py; py=$(find_python "$pyver")
  if [ -z "$py" ]; then
    echo "SKIPPED: no Python $pyver interpreter on this machine (python$pyver, pyenv)" > "$log"
    printf '%s|%s|-|-|-|skipped: no Python %s here|0\n' "$name" "$pyver" "$pyver" > "$result"
    return
  fi
  local -a install=("${CORE[@]}" "${TESTS[@]}") flags=()
  # shellcheck disable=SC2206  # the package list is split on purpose
  [ -n "$pkgs" ] && install+=($pkgs)
  local key_extra
  if [ "$pin" = constraints ]; then
    local c; c=$(constraints_for "$pyver")
    flags=(-c "$ROOT/$c")
    key_extra=$(sha256sum "$c")
  else
    flags=(--exclude-newer "${pin}T00:00:00Z")
    key_extra=$pin
  fi
  local key; key=$(printf '%s\n' "$("$py" -VV)" "${install[@]}" "$key_extra" | sha256sum | cut -c1-16)
  local venv=$CACHE/venvs/$name-$key
  local start=$SECONDS
  {
    if [ ! -f "$venv/.installed" ]; then
      echo "== $name: creating $venv"
      rm -rf "$venv"
      "$UV" venv -q --python "$py" "$venv"
      "$UV" pip install -q --python "$venv/bin/python" "${flags[@]}" "${install[@]}"
      touch "$venv/.installed"
    fi
    # This checkout, registered as installed (entry points: Airflow's provider discovery).
    "$UV" pip install -q --python "$venv/bin/python" --no-deps -e "$ROOT"
  } > "$log" 2>&1 || {
    printf '%s|%s|-|-|-|install failed|%s\n' "$name" "$pyver" $((SECONDS - start)) > "$result"
    return
  }
  local -a tests
  case $kind in
    airflow) tests=("${AIRFLOW_TESTS[@]}") ;;
    dagster) tests=("${DAGSTER_TESTS[@]}") ;;
    core) tests=("${CORE_TESTS[@]}") ;;
  esac
  local status=passed summary
  # -o addopts="": the main suite's options (plugins these venvs lack) stay out.
  if ! (cd "$ROOT" && PYTHONPATH=$ROOT/src "$venv/bin/python" -m pytest "${tests[@]}" -q \
        -p no:cacheprovider -o addopts="" --strict-markers -ra --durations=10) >> "$log" 2>&1; then
    status=FAILED
  fi
  summary=$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed|error)' "$log" | tail -1 | tr -d '=' | sed 's/ in [0-9.]*s.*//' | xargs)
  local versions
  versions=$("$venv/bin/python" - <<'EOF'
from importlib import metadata
import sys
def v(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"
print("%d.%d.%d|%s|%s" % (*sys.version_info[:3], v("apache-airflow-core") if v("apache-airflow-core") != "-" else v("apache-airflow"), v("dagster")))
EOF
)
  printf '%s|%s|%s|%s: %s|%s\n' "$name" "$versions" "$kind" "$status" "$summary" \
    $((SECONDS - start)) > "$result"
}

selected=("$@")
wanted() {
  [ ${#selected[@]} -eq 0 ] && return 0
  local s; for s in "${selected[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1
}

t0=$SECONDS
for row in "${ROWS[@]}"; do
  IFS='|' read -r name pyver pkgs pin kind <<< "$row"
  wanted "$name" || continue
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  echo "== matrix: $name" >&2
  run_row "$name" "$pyver" "$pkgs" "$pin" "$kind" &
done
wait
total=$((SECONDS - t0))

table=$OUT/table.md
{
  echo "| row | Python | Airflow | Dagster | tests | result | time |"
  echo "|---|---|---|---|---|---|---|"
  for f in "$OUT"/*.result; do
    IFS='|' read -r name py af dg kind res secs < "$f"
    case $kind in
      airflow) what="Airflow tests without a live server" ;;
      dagster) what="Dagster tests without a live server" ;;
      core) what="core tests" ;;
      *) what=$kind ;;
    esac
    echo "| $name | $py | $af | $dg | $what | $res | $((secs / 60)) min $((secs % 60)) s |"
  done
  echo
  echo "Run by \`scripts/test-matrix.sh\` on $(date -u +%Y-%m-%d) in $((total / 60)) min $((total % 60)) s."
} > "$table"
cat "$table"

# The README shows the table between its markers.
python3 - "$table" <<'EOF'
import re, sys
from pathlib import Path
table = Path(sys.argv[1]).read_text().strip()
readme = Path("README.md")
text = readme.read_text()
start, end = "<!-- tested-versions:start -->", "<!-- tested-versions:end -->"
if start in text and end in text:
    text = re.sub(re.escape(start) + ".*?" + re.escape(end),
                  lambda _: f"{start}\n{table}\n{end}", text, flags=re.S)
    readme.write_text(text)
EOF

if grep -qE '\|(FAILED|install failed)' "$OUT"/*.result; then
  echo "matrix: FAILED rows (logs in $OUT):" >&2
  grep -lE '\|(FAILED|install failed)' "$OUT"/*.result >&2
  exit 1
fi
grep -l '|skipped' "$OUT"/*.result 2>/dev/null | sed 's/^/matrix: skipped /' >&2 || true
echo "matrix: every row passed in $((total / 60)) min $((total % 60)) s" >&2
