"""The live table of ``trigrun fire --all``: one row per job (state, elapsed time, name) with
the run's URL on a line of its own under it, so a URL is never cut at the terminal's edge.

On a terminal the table is redrawn in place (twice a second, so elapsed times move);
otherwise each change is one appended line, so a CI log reads top to bottom.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TextIO

from .._flow import Event
from .._results import JobRun, RunState, TriggerResult
from ._common import hyperlinks, show_url

_END_LABELS = {RunState.SUCCESS: "SUCCESS", RunState.FAILED: "FAILED",
               RunState.CANCELLED: "CANCELLED", RunState.TIMEOUT: "TIMEOUT",
               RunState.UNKNOWN: "UNKNOWN"}
STATE_WIDTH = 14


def end_label(got: JobRun) -> str:
    t = got.trigger
    if not t.ok:
        return "TRIGGER FAILED"
    if t.skipped:
        return "SKIPPED"
    if got.run is not None:
        return _END_LABELS.get(got.run.state, got.run.state.value.upper())
    return "ADOPTED" if t.adopted else "FIRED"


def _rows(text: str, width: int) -> int:
    """Terminal rows a line of ``text`` takes at ``width`` columns (it wraps, not cut)."""
    return max(1, -(-len(text) // width))


class Board:
    """Rows in the jobs' order; ``progress`` and ``event`` are ``run_many``'s and the engine's
    callbacks. ``going()`` names the runs fired and not yet ended (for Ctrl-C)."""

    def __init__(self, stream: TextIO, names: list[str], *, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, width: int | None = None,
                 link: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.link = hyperlinks(stream) if link is None else link
        self.names = names
        self.states = ["pending"] * len(names)
        self.runs: list[str] = [""] * len(names)  # the run's URL, else its id, else an error
        self.results: list[TriggerResult | None] = [None] * len(names)
        self.started: list[float | None] = [None] * len(names)
        self.ended: list[float | None] = [None] * len(names)
        self._rows = {n: i for i, n in enumerate(names)}
        self._clock = clock
        self._width = width
        self._drawn = 0  # terminal rows the last draw took

    def _elapsed(self, i: int) -> str:
        t0 = self.started[i]
        if t0 is None:
            return ""
        end = self.ended[i]
        return f"{(end if end is not None else self._clock()) - t0:6.1f}s"

    def line(self, i: int, width: int | None = None) -> str:
        """The row of job ``i``: state, elapsed, name; the name is cut to ``width``."""
        head = f"{self.states[i]:<{STATE_WIDTH}} {self._elapsed(i):>8}  "
        name = self.names[i]
        if width is not None and len(head) + len(name) > width:
            name = name[:max(1, width - len(head) - 1)] + "…"
        return head + name

    def _say(self, i: int) -> None:
        if self.tty:
            self.draw()
        else:
            where = f"  {show_url(self.runs[i], self.link)}" if self.runs[i] else ""
            self.stream.write(f"trigrun: {self.names[i]}: {self.states[i]} "
                              f"{self._elapsed(i).strip()}{where}".rstrip() + "\n")
            self.stream.flush()

    def draw(self) -> None:
        if not self.tty:
            return
        width = self._width or shutil.get_terminal_size((100, 20)).columns
        # Up over the last draw, clear to the end of the screen, write the table again. A URL
        # wraps instead of being cut; its rows are counted so the next draw moves up over them.
        out = [f"\x1b[{self._drawn}A"] if self._drawn else []
        out.append("\r\x1b[J")
        rows = 0
        for i in range(len(self.names)):
            row = self.line(i, width - 1)
            out.append(row + "\n")
            rows += 1
            if self.runs[i]:
                out.append(f"    {show_url(self.runs[i], self.link)}\n")
                rows += _rows(f"    {self.runs[i]}", width)
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn = rows

    def progress(self, i: int, got: JobRun | None, phase: str) -> None:
        now = self._clock()
        if phase == "firing":
            self.started[i] = now
            self.states[i] = "firing"
        elif got is not None:
            t = got.trigger
            self.results[i] = t
            self.runs[i] = t.run_url or t.run_id or ""
            if phase == "waiting":
                self.states[i] = "waiting"
            else:
                self.ended[i] = now
                self.states[i] = end_label(got)
                if got.run is not None and got.run.run_url:
                    self.runs[i] = got.run.run_url
                elif not t.ok:
                    self.runs[i] = ""  # the error is told once, under the summary
        self._say(i)

    def event(self, event: Event) -> None:
        """A poll's state while a job waits (``queued``, ``running``), or its delay."""
        i = self._rows.get(event.job)
        if i is None or self.ended[i] is not None:
            return
        if event.kind == "delay":  # delay_seconds: the fire waits
            self.states[i] = "delayed"
            self._say(i)
            return
        state = event.data.get("state")
        if event.kind == "poll" and self.states[i] not in ("pending", "firing") \
                and state in ("queued", "running") and state != self.states[i]:
            self.states[i] = str(state)
            self._say(i)

    def going(self) -> list[TriggerResult]:
        """The runs this table saw fired and not end: they keep going when the CLI stops."""
        return [t for t, end in zip(self.results, self.ended, strict=True)
                if t is not None and end is None and t.ok and not t.skipped and t.run_id]

    def firing(self) -> list[str]:
        """Jobs whose fire was under way: their run may or may not have started."""
        return [n for n, s, t in zip(self.names, self.states, self.results, strict=True)
                if s == "firing" and t is None]
