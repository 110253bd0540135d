"""``trigrun validate``, ``next``, ``schema`` and the parser, run in-process through ``main``
and, where the process boundary matters (exit status, entry point), as ``python -m trigrun``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.core.seed_jobs import SEEDS
from trigrun import load_jobs
from trigrun._cli import main

REPO = Path(__file__).resolve().parents[2]

GOOD = {"jobs": [
    {"name": "Nightly ETL", "kind": "cron",
     "schedule": {"cron": "30 2 * * *", "timezone": "America/New_York"},
     "request": {"url": "https://airflow.example.com/api/v1/dags/nightly_etl/dagRuns",
                 "headers": {"Authorization": "secret://airflow-api-key"},
                 "body": {"conf": {"ds": "{{ ds }}"}}}},
    {"name": "Half-hourly sync", "schedule": {"cron": "*/30 * * * *", "timezone": "Europe/Berlin"},
     "target": {"type": "dagster", "base_url": "http://127.0.0.1:3000", "job_name": "sync",
                "repository_location_name": "loc"}},
    {"name": "Backfill once", "schedule": {"at": "2026-11-01T01:30:00",
                                           "timezone": "America/New_York"},
     "request": {"url": "https://hooks.example.com/backfill"}},
]}

# Five problems in two jobs, plus a duplicate name: all must be listed.
BAD = [
    {"name": "broken", "schedule": {"cron": "61 * * * *", "timezone": "Mars/Olympus"},
     "request": {"url": "ftp://example.com/x"},
     "retry_policy": {"retry_on_statuses": [404]}},
    {"name": "broken", "request": {"url": "https://example.com/x"}, "shedule": {}},
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- validate -------------------------------------------------------------------------------


def test_validate_good_file(capsys: pytest.CaptureFixture[str],
                            jobs_file: Callable[..., str]) -> None:
    path = jobs_file(GOOD)
    code, out, err = run(capsys, "validate", path)
    assert (code, err) == (0, "")
    assert out == f"{path}: 3 jobs OK\n"


def test_validate_lists_every_problem_of_every_file(capsys: pytest.CaptureFixture[str],
                                                    jobs_file: Callable[..., str]) -> None:
    good = jobs_file(GOOD, "good.yaml")
    bad = jobs_file(BAD, "bad.yaml")
    broken_json = jobs_file('{"name": "x", ', "broken.json")
    code, out, _ = run(capsys, "validate", good, bad, broken_json)
    assert code == 1
    lines = out.splitlines()
    # Both jobs are named 'broken': each line says which one by its place in the file.
    expected = [
        (1, "field schedule.cron: '61 * * * *' is not a valid 5-field cron expression"),
        (1, "field schedule.timezone: unknown time zone 'Mars/Olympus'"),
        (1, "field request.url: 'ftp://example.com/x' is not an absolute http(s) URL"),
        (1, "field retry_policy.retry_on_statuses: 404 is a client error"),
        (2, "field shedule: Extra inputs are not permitted"),
        (2, "field name: duplicate of job #1"),
    ]
    for position, text in expected:
        [line] = [ln for ln in lines if text in ln]
        assert line.startswith(f"{bad}: job 'broken' (#{position}), ")
    assert f"{good}: 3 jobs OK" in lines
    assert f"{bad}: INVALID, 6 problems" in lines
    assert any(ln.startswith(f"{broken_json}: not valid JSON") for ln in lines)
    assert f"{broken_json}: INVALID, 1 problem" in lines
    assert lines[-1] == "1 of 3 files valid"


def test_validate_tells_apart_two_jobs_of_one_name(capsys: pytest.CaptureFixture[str],
                                                   jobs_file: Callable[..., str]) -> None:
    # The same mistake in two jobs of one name: two problems, not one job reported twice.
    twice = [{"name": "nightly", "request": {"url": f"https://x.example/{n}"},
              "retry_policy": {"max_attempts": 0}} for n in ("a", "b")]
    path = jobs_file({"jobs": twice}, "twice.yaml")
    code, out, _ = run(capsys, "validate", path)
    assert code == 1
    attempts = [ln for ln in out.splitlines() if "retry_policy.max_attempts" in ln]
    assert [ln.split(",")[0] for ln in attempts] == [f"{path}: job 'nightly' (#1)",
                                                     f"{path}: job 'nightly' (#2)"]
    assert f"{path}: job 'nightly' (#2), field name: duplicate of job #1" in out


def test_validate_missing_and_empty_files(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          jobs_file: Callable[..., str]) -> None:
    missing = str(tmp_path / "nope.yaml")
    empty = jobs_file("", "empty.yaml")
    code, out, _ = run(capsys, "validate", missing, empty)
    assert code == 1
    assert f"{missing}: cannot read the jobs file" in out
    assert f"{empty}: the file is empty" in out


def test_validate_the_seed_jobs_verbatim(capsys: pytest.CaptureFixture[str],
                                         jobs_file: Callable[..., str]) -> None:
    paths = [jobs_file(text, f"{name}.json") for name, text in SEEDS.items()]
    code, out, _ = run(capsys, "validate", *paths)
    assert code == 0, out
    assert out.count(": 1 job OK") == 3


# --- next -----------------------------------------------------------------------------------


def test_next_marks_dst_ticks(capsys: pytest.CaptureFixture[str],
                              jobs_file: Callable[..., str]) -> None:
    path = jobs_file(GOOD)
    code, out, err = run(capsys, "next", path, "--job", "Nightly ETL", "--from",
                         "2026-03-07T00:00", "--count", "3")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "Nightly ETL",
        "  cron '30 2 * * *' in America/New_York, airflow rules",
        "  2026-03-07 Sat 02:30 EST (UTC-05:00)",
        "  2026-03-08 Sun 03:30 EDT (UTC-04:00)  (DST: shifted from 02:30, which the clocks skip)",
        "  2026-03-09 Mon 02:30 EDT (UTC-04:00)",
    ]
    code, out, _ = run(capsys, "next", path, "--job", "nightly_etl", "--from",
                       "2026-03-07T00:00", "--count", "3", "--rules", "dagster")
    assert code == 0
    assert "  2026-03-08 Sun 03:00 EDT (UTC-04:00)  (DST: shifted from 02:30, which the clocks " \
        "skip)" in out.splitlines()


def test_next_fall_back_once_and_croniter_twice(capsys: pytest.CaptureFixture[str],
                                                jobs_file: Callable[..., str]) -> None:
    path = jobs_file({"name": "daily", "schedule": {"cron": "30 1 * * *",
                                                    "timezone": "America/New_York"},
                      "request": {"url": "https://example.com/x"}})
    args = ("next", path, "--from", "2026-11-01T00:00", "--count", "2")
    _, out, _ = run(capsys, *args)
    assert out.splitlines()[2:] == [
        "  2026-11-01 Sun 01:30 EST (UTC-05:00)  (DST: 01:30 happens twice; fires once, at the "
        "2nd, in EST)",
        "  2026-11-02 Mon 01:30 EST (UTC-05:00)",
    ]
    _, out, _ = run(capsys, *args, "--rules", "croniter")
    assert [ln for ln in out.splitlines() if "2026-11-01" in ln] == [
        "  2026-11-01 Sun 01:30 EDT (UTC-04:00)  (DST: 01:30 happens twice; this is the 1st, "
        "in EDT)",
        "  2026-11-01 Sun 01:30 EST (UTC-05:00)  (DST: 01:30 happens twice; this is the 2nd, "
        "in EST)",
    ]


def test_next_every_job_with_offsets_and_once(capsys: pytest.CaptureFixture[str],
                                              jobs_file: Callable[..., str]) -> None:
    path = jobs_file(GOOD)
    code, out, _ = run(capsys, "next", path, "--from", "2026-10-25T01:00:00+00:00", "-n", "4")
    assert code == 0
    blocks = out.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["Nightly ETL", "Half-hourly sync",
                                                  "Backfill once"]
    berlin = blocks[1].splitlines()
    assert berlin[1] == "  cron '*/30 * * * *' in Europe/Berlin, airflow rules"
    # 01:00 UTC is 02:00 CET, the repeated hour's second pass... after 02:00 and 02:30 CEST.
    assert berlin[2:] == [
        "  2026-10-25 Sun 02:00 CET (UTC+01:00)  (DST: 02:00 happens twice; this is the 2nd, "
        "in CET)",
        "  2026-10-25 Sun 02:30 CET (UTC+01:00)  (DST: 02:30 happens twice; this is the 2nd, "
        "in CET)",
        "  2026-10-25 Sun 03:00 CET (UTC+01:00)",
        "  2026-10-25 Sun 03:30 CET (UTC+01:00)",
    ]
    assert blocks[2].splitlines()[1:] == [
        "  once, in America/New_York",
        "  2026-11-01 Sun 01:30 EST (UTC-05:00)  (DST: 01:30 happens twice; read as the 2nd, "
        "in EST)",
    ]


def test_next_json(capsys: pytest.CaptureFixture[str], jobs_file: Callable[..., str]) -> None:
    path = jobs_file(GOOD)
    code, out, _ = run(capsys, "next", path, "--json", "--job", "Nightly ETL", "--from",
                       "2026-03-08T00:00", "-n", "1", "--rules", "dagster")
    assert code == 0
    [job] = json.loads(out)
    assert job["job"] == "Nightly ETL"
    assert job["fire_times"] == [{"time": "2026-03-08T03:00:00-04:00",
                                  "utc": "2026-03-08T07:00:00+00:00", "tz": "EDT",
                                  "dst_note": "DST: shifted from 02:30, which the clocks skip"}]


def test_next_defaults_to_now(capsys: pytest.CaptureFixture[str],
                              jobs_file: Callable[..., str]) -> None:
    path = jobs_file({"name": "utc", "schedule": {"cron": "0 0 * * *"},
                      "request": {"url": "https://example.com/x"}})
    before = datetime.now(timezone.utc).date()
    code, out, _ = run(capsys, "next", path, "-n", "2")
    after = datetime.now(timezone.utc).date()
    assert code == 0
    first, second = (date.fromisoformat(ln.split()[0]) for ln in out.splitlines()[2:4])
    assert before <= first <= after + timedelta(days=1)
    assert second == first + timedelta(days=1)


def test_next_unknown_job_and_bad_options_are_usage_errors(
        capsys: pytest.CaptureFixture[str], jobs_file: Callable[..., str]) -> None:
    path = jobs_file(GOOD)
    code, out, err = run(capsys, "next", path, "--job", "Nope")
    assert (code, out) == (2, "")
    assert err == (f"trigrun: error: {path}: no job named 'Nope'; the jobs are: 'Nightly ETL', "
                   "'Half-hourly sync', 'Backfill once'\n")
    code, _, err = run(capsys, "next", path, "--from", "yesterday")
    assert code == 2
    assert "'yesterday' is not an ISO 8601 time" in err
    code, _, err = run(capsys, "next", path, "--count", "0")
    assert code == 2
    code, _, err = run(capsys, "next", path, "--rules", "cron")
    assert code == 2
    assert "invalid choice: 'cron'" in err


def test_next_on_an_invalid_file_lists_problems_on_stderr(
        capsys: pytest.CaptureFixture[str], jobs_file: Callable[..., str]) -> None:
    code, out, err = run(capsys, "next", jobs_file(BAD))
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 6
    assert all(ln.startswith("trigrun: error: ") for ln in err.splitlines())
    assert "Traceback" not in err


# --- parser, help, exit codes -----------------------------------------------------------------


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for line in ("0    ok", "1    invalid jobs file", "2    usage error", "3    the trigger failed",
                 "4    the downstream run failed", "5    the wait timed out"):
        assert line in out
    code, out, _ = run(capsys, "next", "--help")
    assert code == 0
    assert "default: airflow" in " ".join(out.split())


def test_no_command_and_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "validate" in err
    code, _, err = run(capsys, "validate")
    assert code == 2
    assert "the following arguments are required: FILE" in err
    code, _, _ = run(capsys, "frobnicate")
    assert code == 2


def test_unexpected_error_is_one_line_without_traceback(
        capsys: pytest.CaptureFixture[str], jobs_file: Callable[..., str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(path: str) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("trigrun._cli._next.load_jobs", explode)
    code, _, err = run(capsys, "next", jobs_file(GOOD))
    assert code == 1
    assert err == "trigrun: error: unexpected error: RuntimeError: disk on fire\n"


# --- schema ---------------------------------------------------------------------------------


def _as_json_doc(path: Path) -> Any:
    """A YAML file as the YAML language server sees it: timestamps are strings."""
    def fix(o: Any) -> Any:
        if isinstance(o, (datetime, date)):
            return o.isoformat()
        if isinstance(o, dict):
            return {k: fix(v) for k, v in o.items()}
        if isinstance(o, list):
            return [fix(v) for v in o]
        return o

    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else fix(yaml.safe_load(text))


def example_job_files() -> list[Path]:
    """Every jobs file under the repository's example folders (not component or workspace
    YAML): a list of jobs, ``{"jobs": [...]}``, or a single job."""
    found = []
    for p in sorted(REPO.glob("example*/**/*")):
        if p.suffix not in (".yaml", ".yml", ".json"):
            continue
        data = _as_json_doc(p)
        if isinstance(data, list) or (isinstance(data, dict) and (
                "jobs" in data or ("name" in data and ("request" in data or "target" in data)))):
            found.append(p)
    return found


def test_schema_validates_the_example_jobs_and_rejects_bad_ones(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        jobs_file: Callable[..., str]) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    examples = example_job_files()
    assert examples, "no example jobs file found in the repository"
    docs: dict[str, Any] = {str(p): _as_json_doc(p) for p in examples}
    docs.update({f"seed {k}": json.loads(v) for k, v in SEEDS.items()})
    docs["list form"] = [json.loads(v) for v in SEEDS.values()]
    docs["tests GOOD"] = GOOD
    docs["lower-case method"] = {"name": "x", "request": {"url": "https://e.com", "method": "put"}}
    for where, doc in docs.items():
        errors = [e.message for e in validator.iter_errors(doc)]
        assert errors == [], where
    for p in examples:  # the schema agrees with the loader on them
        assert load_jobs(p)

    def messages(doc: Any) -> list[str]:
        return [f"{list(e.absolute_path)} {e.message}" for e in validator.iter_errors(doc)]

    assert messages({"jobs": [{"name": "x", "request": {"url": "https://e.com"},
                               "retry_policy": {"max_attempts": 0}}]}) == \
        ["['jobs', 0, 'retry_policy', 'max_attempts'] 0 is less than the minimum of 1"]
    assert messages({"name": "x", "request": {"url": "https://e.com"}, "shedule": {}}) == \
        ["[] Additional properties are not allowed ('shedule' was unexpected)"]
    assert messages({"name": "x", "target": {"type": "airflow", "base_url": "http://a"}}) == \
        ["['target'] {'type': 'airflow', 'base_url': 'http://a'} is not valid under any of the "
         "given schemas"]
    assert messages({"jobs": [], "extra": 1})
    assert messages("a string")


def test_schema_to_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "trigrun.schema.json"
    code, out, _ = run(capsys, "schema", "-o", str(target))
    assert code == 0
    assert f"# yaml-language-server: $schema={target}" in out
    assert json.loads(target.read_text())["title"] == "trigrun jobs file"
    code, _, err = run(capsys, "schema", "-o", str(tmp_path / "no" / "such" / "dir.json"))
    assert code == 1
    assert err.startswith("trigrun: error: cannot write ")


# --- a real process -------------------------------------------------------------------------


def _trigrun(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trigrun", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_python_dash_m_trigrun_validate(jobs_file: Callable[..., str]) -> None:
    good, bad = jobs_file(GOOD, "good.yaml"), jobs_file(BAD, "bad.yaml")
    proc = _trigrun("validate", good, bad)
    assert (proc.returncode, proc.stderr) == (1, "")
    assert proc.stdout.splitlines()[0] == f"{good}: 3 jobs OK"
    assert proc.stdout.splitlines()[-2:] == [f"{bad}: INVALID, 6 problems", "1 of 2 files valid"]
