"""Every fault scenario through every path: the outcome, the attempts, the time taken, no
duplicate trigger (the target counts runs per idempotency key) and no leaked credential.

Each test records its row of ``docs/reliability.md`` before it asserts, so the table shows
what happened even where a known bug makes the test a strict xfail.
"""

from __future__ import annotations

import logging
import re

import pytest

from tests.helpers.faults import TLSFiles

from ._paths import ORCHESTRATOR_SECONDS, PATHS, Observed, run_airflow, run_dagster, run_engine
from ._report import Report, seconds_bound
from ._scenarios import SCENARIOS, Rig, Scenario
from ._secrets import KEY, TOKEN, hits

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# Short, stable causes for the table (messages themselves hold ports and URLs).
CAUSES = (
    (r"could not connect to the proxy", "proxy unreachable"),
    (r"proxy error: 407", "proxy refused the credentials (407)"),
    (r"certificate verify failed", "certificate not trusted"),
    (r"refused|Errno 111", "connection refused"),
    (r"too many redirects", "redirect loop stopped"),
    (r"not JSON|invalid JSON", "reply is not JSON"),
    (r"truncat|too large|larger than|read limit", "reply too large to read"),
    (r"no run id", "no run id in the reply"),
    (r"unknown status '([^']+)'", r"unknown status '\1'"),
    (r"failed (\d+) times in a row", r"status check failed \1 times"),
)


def cause(message: str) -> str:
    for pattern, text in CAUSES:
        if m := re.search(pattern, message, re.I):
            return m.expand(text)
    return "see test output"


def outcome(obs: Observed) -> str:
    if not obs.trigger_ok:
        head = "trigger failed" + (f" (HTTP {obs.status})" if obs.status else "")
        return f"{head}: {cause(obs.message)}"
    head = "adopted the run an earlier attempt started" if obs.adopted else "run started"
    if obs.state is None:
        return head
    tail = "" if obs.state == "success" else f" ({cause(obs.message)})"
    return f"{head} → {obs.state}{tail}"


def _cases() -> list[object]:
    cases = []
    for scenario in SCENARIOS:
        for path in PATHS:
            marks = [pytest.mark.xfail(strict=True, reason=scenario.bug)] if scenario.bug else []
            cases.append(pytest.param(scenario, path, id=f"{scenario.id}-{path}", marks=marks))
    return cases


@pytest.mark.parametrize(("scenario", "path"), _cases())
def test_fault(scenario: Scenario, path: str, request: pytest.FixtureRequest, report: Report,
               tls_files: TLSFiles, capfd: pytest.CaptureFixture[str],
               caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("trigrun", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    index = SCENARIOS.index(scenario)
    # The name shows up in messages: nothing in it may look like a cause the test looks for.
    rig = Rig(job=f"rel{index + 1:02d} {path}", tls=tls_files)
    try:
        armed = scenario.arm(rig)
        if path in ("sync", "async"):
            obs = run_engine(path, armed.spec, capfd, caplog)
        elif path == "airflow":
            home = request.getfixturevalue("airflow_ready")
            obs = run_airflow(armed.spec, f"reliability_{scenario.id}", home, capfd, monkeypatch)
        else:
            obs = run_dagster(armed.spec, capfd)
        requests, runs = armed.trigger_requests(), armed.runs()
    finally:
        rig.close()
    leaks = hits(obs.evidence, [TOKEN, KEY, *armed.secrets()])
    exp = scenario.expect
    lo, hi = exp.seconds
    if path in ("airflow", "dagster"):
        hi += ORCHESTRATOR_SECONDS
    report.add(request.node.nodeid, "faults", (index, list(PATHS).index(path)), [
        str(index + 1), scenario.title, PATHS[path], outcome(obs), " → ".join(obs.attempts),
        f"{requests} → {runs}", str(len(leaks)), seconds_bound(lo, hi)],
        figures=(runs, exp.runs, max(0, exp.runs - runs), max(0, runs - exp.runs)))
    if scenario.bug:
        report.note_bug(scenario.title, scenario.bug)
    print(f"{scenario.id} via {path}: {obs.seconds:.2f}s, {outcome(obs)}; {obs.message[:300]}")

    assert leaks == []
    assert runs == exp.runs, "runs started at the target"
    assert obs.trigger_ok is exp.trigger_ok, obs.message
    assert obs.attempts == list(exp.attempts)
    assert obs.adopted is exp.adopted
    assert obs.state == exp.state, obs.message
    if exp.status is not None:
        assert obs.status == exp.status
    for pattern in exp.says:
        assert re.search(pattern, obs.message, re.I), (pattern, obs.message)
    assert lo <= obs.seconds <= hi, obs.seconds
    armed.proofs()
