#!/usr/bin/env bash
# Build the sdist and the wheel and check them the way an index and its users would:
# `twine check --strict` (metadata, README rendering), `check-wheel-contents`, and the file
# lists and metadata fields this project promises (docs/releasing.md). Run by scripts/test.sh;
# needs the `package` dependency group (make bootstrap installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
out=$(mktemp -d "${TMPDIR:-/tmp}/trigrun-dist.XXXXXX")
trap 'rm -rf "$out"' EXIT

# --no-isolation: the pinned hatchling of the venv builds, so no download and the same result
# every time.
"$PY" -m build --no-isolation --sdist --wheel --outdir "$out" . >"$out/build.log" 2>&1 \
  || { cat "$out/build.log" >&2; echo "check-package: build failed" >&2; exit 1; }
"$PY" -m twine check --strict "$out"/*.tar.gz "$out"/*.whl
"$PY" -m check_wheel_contents --package src/trigrun "$out"/*.whl
"$PY" - "$out" <<'EOF'
"""The promises of docs/releasing.md about what the two files contain."""
import re
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

out = Path(sys.argv[1])
(sdist,) = out.glob("*.tar.gz")
(wheel,) = out.glob("*.whl")
problems = []

with tarfile.open(sdist) as tar:
    top = tar.getnames()[0].split("/")[0]
    sfiles = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    pkg_info = tar.extractfile(f"{top}/PKG-INFO").read().decode()
for must in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "src/trigrun/__init__.py",
             "src/trigrun/_version.py", "src/trigrun/py.typed", "tests/conftest.py"):
    if must not in sfiles:
        problems.append(f"sdist lacks {must}")
for name in sorted(sfiles):
    if re.match(r"(\.ci|demo|\.venv|\.tmp|dist|build)/", name) \
            or re.match(r"benchmarks/(results.*\.json|README\.md)$", name) \
            or "__pycache__" in name or name.endswith(".pyc"):
        problems.append(f"sdist must not carry {name}")

with zipfile.ZipFile(wheel) as zf:
    wfiles = zf.namelist()
    (meta_name,) = [n for n in wfiles if n.endswith(".dist-info/METADATA")]
    metadata = zf.read(meta_name).decode()
dist_info = meta_name.rsplit("/", 1)[0]
for name in wfiles:
    if not (name.startswith("trigrun/") or name.startswith(dist_info + "/")):
        problems.append(f"wheel carries {name} outside the trigrun package")
if f"{dist_info}/licenses/LICENSE" not in wfiles:
    problems.append("wheel lacks the LICENSE under .dist-info/licenses/")
if "trigrun/py.typed" not in wfiles:
    problems.append("wheel lacks trigrun/py.typed")

for where, text in (("wheel", metadata), ("sdist", pkg_info)):
    msg = Parser().parsestr(text)
    if msg.get("License-Expression") != "Apache-2.0":
        problems.append(f"{where} metadata: License-Expression is {msg.get('License-Expression')!r}")
    if "LICENSE" not in msg.get_all("License-File", []):
        problems.append(f"{where} metadata: no License-File: LICENSE")
    extras = msg.get_all("Provides-Extra", [])
    if "dev" in extras:
        problems.append(f"{where} metadata: the dev tools are a published extra")
    classifiers = msg.get_all("Classifier", [])
    for want in ("Framework :: Apache Airflow :: Provider", "Development Status :: 4 - Beta",
                 *(f"Programming Language :: Python :: 3.{m}" for m in (10, 11, 12, 13))):
        if want not in classifiers:
            problems.append(f"{where} metadata: classifier {want!r} missing")
    if not msg.get_all("Project-URL"):
        problems.append(f"{where} metadata: no Project-URL")
    if not msg.get("Author"):
        problems.append(f"{where} metadata: no Author")
    version = msg.get("Version")

init = Path("src/trigrun/_version.py").read_text()
if f'__version__ = "{version}"' not in init:
    problems.append(f"metadata version {version} is not src/trigrun/_version.py's")
if any("trigrun.example" in u for u in Parser().parsestr(metadata).get_all("Project-URL", [])):
    print("check-package: note: the project URLs are placeholders (trigrun.example); set them "
          "before the first upload (docs/releasing.md)", file=sys.stderr)
if problems:
    print("check-package: " + "\n check-package: ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"check-package: {sdist.name} ({len(sfiles)} files) and {wheel.name} ({len(wfiles)} "
      "files) are fit to publish")
EOF
