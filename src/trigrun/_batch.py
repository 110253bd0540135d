"""Poll groups and per-origin limits of the async engine.

A poll group holds the waits of one engine on one target (the preset's batch scope, the
job's auth and connection settings): the status checks its waits ask for within one window
go out as one batched request (paged), and each wait gets back exactly what its own poll
would have returned, a ``RunStatus`` or the ``Outcome`` of a failed check. Every per-wait
decision (states, deadline, error counting, backoff, cancel) stays in the wait's flow.

Timing: a group flushes on a fixed grid of the loop clock (multiples of ``window``, shifted
by ``GRID_OFFSET``). A wait
that asks at time t is in the flush at the next grid point, at most one window later; since
the flow measures its interval from the time it asked, a wait whose interval is a multiple of
the window asks again just before the same phase of the grid every interval, so its checks
stay evenly spaced, a group sends at most interval/window batches per interval, and no wait is
in a batch it did not ask for (no wait polls faster than it asked). The trade-off: a wait's
first check may be up to one window late.

The limiter: one per origin, shared by every send of the engine (fires, polls, batches,
cancels). A 429 or 503 with ``Retry-After`` pauses the origin once for everyone; sends queued
behind a pause are released one by one (``RELEASE_GAP`` apart), never as a burst; an optional
requests-per-second ceiling spaces every send. The decisions are the pure functions
``flush_at``, ``next_start`` and ``pause_until``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ._flow import Flow, JobFlows, Outcome
from ._targets import RunStatus

logger = logging.getLogger("trigrun")

# The flush grid sits this far after the multiples of the window. Sleeping waits wake on the
# multiples (``coalesced_sleep``'s grid): a cohort woken at a multiple, a few ms late from the
# loop's own lag, still makes the flush just after it, instead of some of its waits landing in
# the next window and splitting the group into two phases.
GRID_OFFSET = 0.025
# Replies from a batch endpoint that mean "this target has no such endpoint" (an older
# Airflow or a proxy in front that does not route it): the group polls per run for good.
NO_BATCH_STATUSES = frozenset({400, 404, 405, 422, 501})
# How far apart sends queued behind a pause are released (50 per second per origin).
RELEASE_GAP = 0.02

Poll = RunStatus | Outcome
Runner = Callable[[Flow], Awaitable[Any]]


def flush_at(now: float, window: float, last_flush: float) -> float:
    """The grid point whose flush a status check asked for at ``now`` joins."""
    offset = min(GRID_OFFSET, window / 4)
    slot = math.ceil((now - offset) / window) * window + offset
    if slot <= last_flush:
        slot = last_flush + window
    return slot


def next_start(now: float, paused_until: float, next_free: float, gap: float,
               release_gap: float = RELEASE_GAP) -> tuple[float, float]:
    """(when a send asked for at ``now`` may start, the origin's next free time).

    ``gap`` is 1 / max_requests_per_second (0: no ceiling). Without a ceiling, only sends that
    had to wait (behind a pause, or behind sends released from one) are spaced."""
    start = max(now, paused_until, next_free)
    if gap > 0:
        return start, start + gap
    if start > now:
        return start, start + release_gap
    return start, next_free


def pause_until(status: int, retry_after: float | None, now: float, paused_until: float,
                cap: float) -> float:
    """The origin's pause after a reply: a 429 or 503 with Retry-After pauses it (once: the
    same answer to many waiters extends one pause, it does not add up)."""
    if status not in (429, 503) or retry_after is None:
        return paused_until
    return max(paused_until, now + min(max(retry_after, 0.0), cap))


@dataclass(slots=True)
class OriginLimit:
    gap: float = 0.0
    paused_until: float = 0.0
    next_free: float = 0.0


class _Member:
    __slots__ = ("flows", "fut", "run_id")

    def __init__(self, flows: JobFlows, run_id: str, fut: asyncio.Future[Poll]) -> None:
        self.flows, self.run_id, self.fut = flows, run_id, fut


def _settle(members: list[_Member], got: Poll | BaseException) -> None:
    for m in members:
        if m.fut.done():  # its wait was cancelled meanwhile
            continue
        if isinstance(got, BaseException):
            m.fut.set_exception(got)
        else:
            m.fut.set_result(got)


class PollGroup:
    """The waits of one engine on one target that share batched status requests."""

    def __init__(self, run: Runner, window: float, context: Any) -> None:
        self._run = run
        self.window = window
        self._context = context
        self._pending: list[_Member] = []
        self._handle: asyncio.TimerHandle | None = None
        self._last = -math.inf
        self._tasks: set[asyncio.Task[None]] = set()
        self.fallback = False  # the target has no batch endpoint: per-run polls for good
        self.batches = 0  # batched requests sent (for tests and benchmarks)

    async def poll(self, flows: JobFlows, run_id: str) -> Poll:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Poll] = loop.create_future()
        self._pending.append(_Member(flows, run_id, fut))
        if self._handle is None:
            when = flush_at(loop.time(), self.window, self._last)
            self._handle = loop.call_at(when, self._flush_now, when, context=self._context)
        return await fut

    def _flush_now(self, when: float) -> None:
        batch, self._pending, self._handle, self._last = self._pending, [], None, when
        task = asyncio.get_running_loop().create_task(self._flush(batch), context=self._context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _single(self, members: list[_Member]) -> None:
        """One run read on its own; the answer goes to every wait on that run."""
        try:
            got: Poll = await self._run(members[0].flows.poll(members[0].run_id))
        except Exception as exc:  # the wait's own poll would have raised it
            _settle(members, exc)
            return
        _settle(members, got)

    async def _flush(self, batch: list[_Member]) -> None:
        by_id: dict[str, list[_Member]] = {}
        for m in batch:
            if m.fut.done():
                continue
            same = by_id.get(m.run_id)
            if same is None:
                by_id[m.run_id] = [m]
            else:
                same.append(m)
        if not by_id:
            return
        if self.fallback or len(by_id) == 1:
            # One run: its own status request is the cheaper one for the target.
            await asyncio.gather(*(self._single(ms) for ms in by_id.values()))
            return
        ids = list(by_id)
        leader = next(iter(by_id.values()))[0].flows
        try:
            calls = leader.preset.batch_calls(ids)
            self.batches += len(calls)
            pages = await asyncio.gather(*(self._run(leader.poll_batch(ids, c)) for c in calls))
        except Exception as exc:  # e.g. a secret that cannot be resolved: as each poll would
            for ms in by_id.values():
                _settle(ms, exc)
            return
        failed: Outcome | None = None
        alone = False  # runs the batch did not show are read on their own
        for page in pages:
            if isinstance(page, dict):
                for rid, status in page.items():
                    if rid in by_id:
                        _settle(by_id.pop(rid), status)
            elif page is None:  # a reply too large to read: this time, per run
                alone = True
            elif page.reply is not None and page.reply.status_code in NO_BATCH_STATUSES:
                if not self.fallback:
                    self.fallback = True
                    logger.warning(
                        "batched status polls: %s answered HTTP %d; the runs of this target "
                        "are polled one by one from now on", leader._safe_url(calls[0].url),
                        page.reply.status_code)
                alone = True
            else:
                failed = page
        if failed is not None and not alone:
            # Which page would have shown a run is not known: every run not shown gets the
            # failed check, as its own poll would have.
            for ms in by_id.values():
                _settle(ms, failed)
            return
        if by_id:
            await asyncio.gather(*(self._single(ms) for ms in by_id.values()))
