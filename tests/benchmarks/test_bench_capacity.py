"""The capacity section's harness: the status server lists runs from their trigger time out of
an index, and a tiny capacity scenario runs end to end and renders. No timing assertions: the
numbers live in benchmarks/README.md (``python -m benchmarks --only capacity``)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from benchmarks import _server
from benchmarks._report import render
from benchmarks._suite import QUICK, capacity_section


def _ids(body: bytes) -> list[str]:
    return [r["dag_run_id"] for r in json.loads(body)["dag_runs"]]


def test_the_listing_shows_a_run_from_its_trigger_until_its_end() -> None:
    st = _server.State()
    st.reset(polls=5, interval=1.0)  # a run ends 3.5 s after its trigger
    st.schedule(n=10, targets=2, spread=10.0)  # run i triggered at i s, on bench{i % 2}
    t0 = st.started
    # At 4.5 s: bench0 has runs 0, 2, 4 triggered; run 0 ended at 3.5 s.
    body = st.listing("bench0", limit=100, offset=0, now=t0 + 4.5)
    assert _ids(body) == ["run__000002", "run__000004"]
    assert json.loads(body)["total_entries"] == 2
    # Paged: one run per page, in trigger order.
    assert _ids(st.listing("bench0", 1, 1, t0 + 4.5)) == ["run__000004"]
    assert _ids(st.listing("bench0", 1, 2, t0 + 4.5)) == []
    # A run that was never read is listed (Airflow lists a run from its creation) ...
    assert "run__000004" not in st.active["bench0"]
    # ... and the ended-runs listing shows run 0 once it ended.
    since = "1970-01-01T00:00:00Z"
    assert _ids(st.ended("bench0", since, 100, 0, t0 + 4.5)) == ["run__000000"]
    # A run read before the schedule knew it (e.g. a warm-up run) is still listed.
    st.timed("bench0", "warm__0", t0 + 4.5)
    assert _ids(st.listing("bench0", 100, 0, t0 + 4.6))[-1] == "warm__0"


@pytest.mark.integration
def test_capacity_section_runs_and_renders() -> None:
    plan = replace(QUICK, capacity_sizes=((40, 2, 1.0),))
    section = capacity_section(plan, lambda msg: None)
    rows = section["rows"]
    assert {r["contender"] for r in rows} == {"trigrun_wait", "trigrun_trigger"}
    assert all("error" not in r for r in rows), rows
    assert all(r["ok"] == 40 and len(r) > 10 for r in rows)
    results: dict[str, Any] = {
        "plan": "quick", "total_s": 1.0, "load_before": (0.0, 0.0, 0.0),
        "load_after": (0.0, 0.0, 0.0), "sections": {"capacity": section},
        "machine": {"cpu": "test", "cores": 2, "memory": "1 GiB", "os": "test",
                    "python": "3", "versions": {}, "date": "today"}}
    text = render(results)
    assert "## Capacity" in text
    assert "| trigrun `TrigRunTrigger.run()` | 40 | 2 | 1 s |" in text
