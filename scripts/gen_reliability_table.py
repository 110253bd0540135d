"""Regenerate docs/reliability.md by running the reliability suite (tests/reliability).

    python scripts/gen_reliability_table.py            # run the suite, rewrite the page
    python scripts/gen_reliability_table.py --check    # exit 1 if the page is out of date
    python scripts/gen_reliability_table.py -- -x      # anything after -- goes to pytest

The page is written by the suite itself (tests/reliability/_report.py) at the end of a complete
run in which every test passed or is a known bug (strict xfail); otherwise the tables go to
.tmp/reliability.md and the page is left alone. Takes a few minutes: it starts a live Airflow.
"""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    before = DOC.read_text() if DOC.exists() else ""
    code = subprocess.call([sys.executable, "-m", "pytest", "tests/reliability", "-q",
                            "-p", "no:cacheprovider", *extra], cwd=ROOT)
    after = DOC.read_text() if DOC.exists() else ""
    if code != 0:
        print("the reliability suite failed: docs/reliability.md was not updated "
              "(this run's tables are in .tmp/reliability.md)", file=sys.stderr)
        return code
    if before == after:
        print("docs/reliability.md is up to date")
        return 0
    if check:
        DOC.write_text(before)
        sys.stdout.writelines(difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True),
            "docs/reliability.md (committed)", "docs/reliability.md (this run)"))
        print("docs/reliability.md is stale: run python scripts/gen_reliability_table.py",
              file=sys.stderr)
        return 1
    print("docs/reliability.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
