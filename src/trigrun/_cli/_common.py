"""What every ``trigrun`` command shares: exit codes, errors, argument types, job selection,
and how URLs are shown (never cut)."""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
from datetime import datetime, timezone
from typing import TextIO

from .._exceptions import SpecError
from .._models import JobSpec
from .._schedule import localize, parse_iso_time
from .._upstream import Upstream

OK, INVALID, USAGE, TRIGGER_FAILED, RUN_FAILED, WAIT_TIMEOUT, INTERRUPTED = 0, 1, 2, 3, 4, 5, 130


class UsageError(Exception):
    """A bad argument the parser could not catch (e.g. an unknown job name): exit 2."""


def err(message: str) -> None:
    for line in str(message).splitlines() or [""]:
        print(f"trigrun: error: {line}", file=sys.stderr)


# --- argument types -------------------------------------------------------------------------


def iso_time(text: str) -> datetime:
    if text.strip().lower() == "now":
        return datetime.now(timezone.utc).replace(microsecond=0)
    try:
        return parse_iso_time(text, "--at")
    except SpecError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-03-08T02:30 or "
            "2026-03-08T07:30:00+00:00") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


# --- jobs -----------------------------------------------------------------------------------


def cli_upstream() -> Upstream:
    """The CLI as the upstream of the runs it starts (docs/upstream.md)."""
    return Upstream(kind="cli", name=f"trigrun CLI on {socket.gethostname()}", url=None)


def job_tz(spec: JobSpec) -> str:
    return spec.schedule.timezone if spec.schedule is not None else "UTC"


def in_job_tz(t: datetime, spec: JobSpec) -> datetime:
    """An aware time as given; a naive one read in the job's time zone."""
    return localize(t, job_tz(spec))


def select(specs: list[JobSpec], name: str | None, path: str) -> list[JobSpec]:
    if name is None:
        return specs
    # Exact name first, then any case, then the slug (as used for DAG ids and job names).
    found = ([s for s in specs if s.name == name]
             or [s for s in specs if s.name.lower() == name.lower()]
             or [s for s in specs if s.slug == name])
    if found:
        return found[:1]
    names = ", ".join(repr(s.name) for s in specs)
    raise UsageError(f"{path}: no job named {name!r}; the jobs are: {names}")


# --- URLs -----------------------------------------------------------------------------------


def hyperlinks(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal known to render OSC 8 hyperlinks. Off unless the
    terminal says so (``TERM_PROGRAM``, ``VTE_VERSION``, kitty, WezTerm, Windows Terminal) or
    ``TRIGRUN_HYPERLINKS=1``; ``TRIGRUN_HYPERLINKS=0`` turns them off."""
    forced = os.environ.get("TRIGRUN_HYPERLINKS")
    if forced is not None:
        return forced.strip() not in ("", "0", "false", "no")
    if not stream.isatty() or os.environ.get("TERM") in (None, "dumb"):
        return False
    return bool(os.environ.get("VTE_VERSION") or os.environ.get("WT_SESSION")
                or os.environ.get("KITTY_WINDOW_ID")
                or os.environ.get("TERM_PROGRAM") in ("iTerm.app", "WezTerm", "vscode"))


# C0 and C1 control characters (ESC, CSI, BEL, CR, ...): a target's reply is untrusted, and
# these in a run id, URL or error would drive the terminal (rewrite lines, set titles, links).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


def clean(text: object) -> str:
    """Reply-derived text made safe to print: every control character removed."""
    return _CONTROLS.sub("", str(text))


def show_url(url: str, link: bool) -> str:
    """The URL, whole (control characters removed); as an OSC 8 hyperlink (clickable even
    when the line wraps) on a terminal that renders them."""
    url = clean(url)
    if not link:
        return url
    return f"\x1b]8;;{url}\x1b\\{url}\x1b]8;;\x1b\\"
