"""The docs cannot drift: their Python examples run, their tables are recomputed from the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from trigrun._models import RetryPolicy
from trigrun._retry import backoff_seconds

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str]]:
    out = []
    for page in DOCS:
        for i, code in enumerate(BLOCK.findall(page.read_text())):
            if "# doc: no-run" not in code:
                out.append((f"{page.name}#{i + 1}", code))
    return out


@pytest.mark.parametrize(("where", "code"), _blocks(), ids=[w for w, _ in _blocks()])
def test_python_examples_run(where: str, code: str) -> None:
    exec(compile(code, where, "exec"), {"__name__": "__doc_example__"})


def test_retry_table_matches_the_code() -> None:
    text = (ROOT / "docs" / "retries.md").read_text()
    table = text.split("<!-- retry-table -->")[1].split("<!-- /retry-table -->")[0]
    rows = [r for r in table.strip().splitlines()[2:]]
    policy = RetryPolicy()
    assert len(rows) == 8
    for row in rows:
        n, attempt, base, rng = (c.strip() for c in row.strip("|").split("|"))
        lo, hi = (float(x) for x in rng.split("–"))
        assert int(attempt) == int(n) + 1
        assert float(base) == pytest.approx(backoff_seconds(policy, int(n), 0.0))
        assert hi == pytest.approx(backoff_seconds(policy, int(n), 0.0))
        # U is drawn from [0, 1): the shortest delay is approached as U -> 1
        assert lo == pytest.approx(backoff_seconds(policy, int(n), 1.0))


def test_spec_reference_is_generated_from_the_models() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_spec_reference.py"),
                           "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, "docs/spec-reference.md is stale: run scripts/gen_spec_reference.py"
