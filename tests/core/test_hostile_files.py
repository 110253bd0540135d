"""Hostile jobs files (issue 19): deep nesting, a YAML alias bomb, deep JSON. Each runs
``trigrun validate`` and ``trigrun fire --dry-run`` in a subprocess under a memory limit, so a
crash or a memory blow-up fails the test, not the suite; each must end with exit code 1 and a
message naming file, job and field."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from trigrun import SpecError, load_jobs, parse_jobs
from trigrun._loader import LoadLimits

SRC = str(Path(__file__).resolve().parents[2] / "src")
MEMORY_LIMIT = 1536 * 1024 * 1024  # address space of the child: far below what a bomb needs

BOMB = """\
- name: bomb
  request:
    url: https://a.example/hook
    body:
      a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
      h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
      i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""
DEEP = 100_000  # 200 KB of brackets


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def trigrun_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "trigrun", *args], env=env, text=True,
                          capture_output=True, timeout=120, preexec_fn=_limit)


HOSTILE = {
    "deep.yaml": ("- name: deep\n  request:\n    url: https://a.example/hook\n    body: "
                  + "[" * DEEP + "]" * DEEP + "\n", "job 'deep', field request.body[0]",
                  "too deep"),
    "nested.yaml": ("[" * DEEP + "]" * DEEP, "job #1, field [0]", "too deep"),
    "deep.json": ('{"jobs": [{"name": "deep", "request": {"url": "https://a.example/hook", '
                  '"body": ' + "[" * DEEP + "]" * DEEP + "}}]}", "job #1, field request.body[0]",
                  "too deep"),
    "bomb.yaml": (BOMB, "job 'bomb', field request.body.", "too large"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("command", [["validate"], ["fire", "--dry-run"]])
def test_a_hostile_file_fails_with_a_named_error(tmp_path: Path, name: str,
                                                 command: list[str]) -> None:
    text, where, why = HOSTILE[name]
    path = tmp_path / name
    path.write_text(text)
    assert len(BOMB) < 1024
    got = trigrun_cli(*command, str(path))
    assert got.returncode == 1, (got.returncode, got.stderr[-2000:])
    assert f"{path}: {where}" in got.stderr + got.stdout
    assert why in got.stderr + got.stdout
    assert "Traceback" not in got.stderr


def test_limits_are_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text("name: j\nrequest:\n  url: https://a.example/x\n  body: [[[[1]]]]\n")
    assert load_jobs(path)
    with pytest.raises(SpecError, match=r"job 'j', field request\.body\[0\]\[0\]: too deep"):
        load_jobs(path, limits=LoadLimits(max_depth=4))
    monkeypatch.setenv("TRIGRUN_MAX_SPEC_NODES", "5")
    with pytest.raises(SpecError, match="too large"):
        load_jobs(path)
    monkeypatch.setenv("TRIGRUN_MAX_SPEC_BYTES", "10")
    with pytest.raises(SpecError, match=r"too large: \d+ bytes"):
        load_jobs(path)


def test_dicts_are_checked_too_without_recursion() -> None:
    deep: list[object] = []
    for _ in range(DEEP):
        deep = [deep]
    with pytest.raises(SpecError, match=r"job 'j', field request\.body\[0\].*too deep"):
        parse_jobs({"name": "j", "request": {"url": "https://a.example", "body": deep}})
    shared: list[object] = ["x"] * 10
    for _ in range(7):  # 10**7 values through shared references, a few hundred objects
        shared = [shared] * 10
    with pytest.raises(SpecError, match="too large"):
        parse_jobs([{"name": "j", "request": {"url": "https://a.example", "body": shared}}])
    cycle: dict[str, object] = {}
    cycle["self"] = cycle
    with pytest.raises(SpecError, match="too deep"):
        parse_jobs({"name": "j", "request": {"url": "https://a.example", "body": cycle}})


def test_json_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.json"
    path.write_text('{"name": "j", ')
    got = trigrun_cli("validate", str(path))
    assert got.returncode == 1
    assert f"{path}: not valid JSON" in got.stderr + got.stdout


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_a_huge_integer_is_a_spec_error_naming_the_file(tmp_path: Path, suffix: str) -> None:
    # Python refuses int() of more than 4,300 digits with a bare ValueError.
    path = tmp_path / f"jobs.{suffix}"
    path.write_text('{"name": "j", "request": {"url": "https://a.example", "body": {"n": '
                    + "9" * 5000 + "}}}")
    with pytest.raises(SpecError, match=f"{path}: .*digits"):
        load_jobs(path)
