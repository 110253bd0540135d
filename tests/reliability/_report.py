"""The results tables of ``docs/reliability.md``, filled in by the reliability tests as they run.

Every test adds its row (what it observed, before asserting) to the session's ``Report``; a
hook records whether the test passed, failed or is a known bug (strict xfail). At the end of the
session the page is written, but only when every row is there and nothing failed: a partial or
failing run writes ``.tmp/reliability.md`` instead, so the committed page never shows a run
that was cut short.

The page must be stable between runs so it can be committed: times are the bounds each test
asserts, not raw measurements (those are printed in the test output), and every other cell is
what the test observed and checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
PARTIAL = ROOT / ".tmp" / "reliability.md"

# nodeid -> "pass" / "bug (xfail)" / "FAIL", written by the makereport hook in conftest.py
OUTCOMES: dict[str, str] = {}

SECTIONS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "faults": (
        "Fault injection",
        ("#", "Scenario", "Path", "Outcome", "Attempts", "Trigger requests → runs started",
         "Canary hits", "Time (asserted)", "Verdict"),
        "Each scenario runs through the sync and async engines, Airflow (`TrigRunOperator`, "
        "deferrable: the trigger request from the worker, the wait in `TrigRunTrigger`, via "
        "`dag.test()`) and Dagster (`build_trigrun_job`, `execute_in_process`). The target is a "
        "real server on 127.0.0.1 (`tests/helpers/faults.py`) that starts one run per "
        "idempotency key and counts them: *trigger requests* is what reached it, *runs "
        "started* must never exceed one. *Canary hits* counts canary secret values found in "
        "results, logs, events, exceptions, XCom, rendered fields, trigger kwargs, Dagster "
        "metadata and event logs, and the SQLite databases. *Attempts* is the engine's own "
        "record (a redirect's hops are one attempt). Every job uses `timeout_seconds: 1.5`, "
        "`max_attempts: 4`, a backoff of 0.05 s doubling up to 0.2 s without jitter, and polls "
        "every 0.05 s (after a failed poll the engine waits at least 1 s)."),
    "restart": (
        "Restart",
        ("Scenario", "Outcome", "Trigger requests (API access log)", "Downstream runs",
         "Credential hits (live SQLite, task and trigger logs)", "Time (asserted)", "Verdict"),
        "A live Airflow 3 (`tests/fixtures/airflow_server.py`): a deferrable `TrigRunOperator` "
        "waits in the triggerer for a run it started on the same Airflow (held queued by "
        "pausing its DAG); once the triggerer has polled it, the triggerer's process group "
        "gets SIGKILL and a new triggerer is started, then the DAG is unpaused. Proof: the "
        "trigger's log per triggerer job (the killed one saw the run queued; the new one "
        "rebuilt the trigger from its stored kwargs and polled the same run id to success), "
        "the API server's access log (one POST to the target DAG's `dagRuns`), one downstream "
        "run, and the task resumed in its first try."),
    "load": (
        "Load",
        ("Scenario", "Fires", "Injected 503s (before / after the run started)",
         "Lost", "Duplicated", "Untruthful results", "Trigger requests", "Time (asserted)",
         "Verdict"),
        "`AsyncEngine.fire_many` against `ChaosTarget`: a deterministic 10% of trigger "
        "requests get 503, half of them after the run was started (the reply was lost)."),
    "scale": (
        "Scale, restarts and proxies",
        ("Scenario", "Runs started", "Runs expected", "Lost", "Duplicated", "Observed",
         "Time (asserted)", "Verdict"),
        "Production shapes: many waits on one target through batched polls with faulty "
        "status reads, a proxy in the path that fails, two Airflow triggerers of which one "
        "is killed, the Airflow scheduler and the Dagster daemon restarted mid-flight. *Runs "
        "started* is counted at the target (its own records, or the API server's access "
        "log); *lost* is a run expected and not started or a wait that never ended; "
        "*duplicated* is a second run (or trigger request) for one job."),
    "leaks": (
        "Secret-leak sweep",
        ("Example", "Runs", "Places searched", "Canary hits", "Verdict"),
        "Every example DAG (`example_dags/`) and Dagster definition (`example_dagster/`) "
        "runs with canary secret values, its hosts pointed at local fakes that echo "
        "credentials back."),
    "properties": (
        "Property-based tests",
        ("Property", "Examples", "Verdict"),
        "Hypothesis, bounded example counts, no deadline."),
}


@dataclass
class Row:
    section: str
    order: tuple[int, ...]
    cells: tuple[str, ...]
    nodeid: str


class Report:
    """Rows of every section; written as Markdown at the end of the session."""

    def __init__(self, expected_faults: int) -> None:
        self.rows: dict[tuple[str, str], Row] = {}
        self.expected_faults = expected_faults
        self.bugs: dict[str, set[str]] = {}  # xfail reason -> the scenarios it shows in

    def add(self, nodeid: str, section: str, order: Sequence[int], cells: Sequence[str],
            key: str = "") -> None:
        assert section in SECTIONS, section
        self.rows[(nodeid, key)] = Row(section, tuple(order), tuple(cells), nodeid)

    def note_bug(self, title: str, reason: str) -> None:
        self.bugs.setdefault(reason, set()).add(title)

    def _verdict(self, nodeid: str) -> str:
        return OUTCOMES.get(nodeid, "FAIL")

    def complete(self) -> bool:
        by = {s: [r for r in self.rows.values() if r.section == s] for s in SECTIONS}
        if len(by["faults"]) != self.expected_faults:
            return False
        if any(not rows for rows in by.values()):
            return False
        return all(self._verdict(r.nodeid) in ("pass", "bug (xfail)") for r in self.rows.values())

    def render(self) -> str:
        out = [
            "# Reliability",
            "",
            "<!-- Generated by the reliability suite (tests/reliability); do not edit by hand. "
            "Regenerate: python scripts/gen_reliability_table.py -->",
            "",
            "Under faults trigrun must trigger exactly once, report truthfully and leak "
            "nothing. These tables are written by `tests/reliability` at the end of a run in "
            "which every test ran and none failed (`python scripts/gen_reliability_table.py`). "
            "A verdict of "
            "**bug (xfail)** marks a test that asserts the correct behaviour and is known to "
            "fail today (strict xfail: it fails the suite once the bug is fixed, so this page "
            "gets regenerated); the bugs are listed at the end.",
            "",
            "Times are the bounds each test asserts (an orchestrator path adds its own start-up "
            "to the engine's bound), so the page does not change from run to run.",
        ]
        for section, (title, header, blurb) in SECTIONS.items():
            rows = sorted((r for r in self.rows.values() if r.section == section),
                          key=lambda r: r.order)
            out += ["", f"## {title}", "", blurb, "",
                    "| " + " | ".join(header) + " |",
                    "|" + "|".join("---" for _ in header) + "|"]
            for row in rows:
                cells = [*row.cells, self._verdict(row.nodeid)]
                out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        if self.bugs:
            out += ["", "## Known bugs", "",
                    "Each is asserted the correct way by a strict-xfail test; the fix belongs "
                    "in `src/trigrun`.", ""]
            for reason, titles in sorted(self.bugs.items()):
                out.append(f"- {reason}. Seen in: {'; '.join(sorted(titles))}.")
        return "\n".join(out) + "\n"

    def write(self) -> Path:
        text = self.render()
        target = DOC if self.complete() else PARTIAL
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
        return target


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def seconds_bound(lo: float, hi: float) -> str:
    """The asserted time bound as shown in the tables."""
    if lo > 0:
        return f"{lo:g}–{hi:g} s"
    return f"< {hi:g} s"
