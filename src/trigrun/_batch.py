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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._flow import BatchPage, Flow, JobFlows, Outcome, PollRun
from ._targets import HttpCall, RunStatus

logger = logging.getLogger("trigrun")

# The flush grid sits this far after the multiples of the window. Sleeping waits wake on the
# multiples (``coalesced_sleep``'s grid): a cohort woken at a multiple, a few ms late from the
# loop's own lag, still makes the flush just after it, instead of some of its waits landing in
# the next window and splitting the group into two phases.
GRID_OFFSET = 0.025
# Replies from a batch endpoint that mean "this target has no such endpoint" (an older
# Airflow or a proxy in front that does not route it): the group polls per run for good.
NO_BATCH_STATUSES = frozenset({400, 404, 405, 422, 501})
# How far before the last complete listing the ended-runs listing starts: the target's clock
# may be behind ours.
ENDED_MARGIN = 60.0
# The longest a listing is used after it was read (a quarter of the interval below 4 s).
MAX_FRESH = 1.0
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


class _Slot:
    """The checks due at one flush, as parallel lists (no object per wait). ``dup``: for a run
    that more than one wait asked for in this flush, its first index -> the others' indices."""

    __slots__ = ("checks", "dup", "futs")

    def __init__(self) -> None:
        self.checks: list[PollRun] = []
        self.futs: list[asyncio.Future[Poll]] = []
        self.dup: dict[int, list[int]] | None = None


def _settle(slot: _Slot, first: int, got: Poll | BaseException,
            read_at: float | None = None) -> None:
    """Answer the check at ``first`` and any other check of the same run in the slot."""
    dup = slot.dup.get(first) if slot.dup else None
    for i in (first, *dup) if dup else (first,):
        fut = slot.futs[i]
        if fut.done():  # its wait was cancelled meanwhile
            continue
        if isinstance(got, BaseException):
            fut.set_exception(got)
        else:
            if read_at is not None and isinstance(got, RunStatus):
                slot.checks[i].read_at = read_at
            fut.set_result(got)


def _ready(loop: asyncio.AbstractEventLoop, value: Poll) -> asyncio.Future[Poll]:
    fut: asyncio.Future[Poll] = loop.create_future()
    fut.set_result(value)
    return fut


class PollGroup:
    """The waits of one engine on one target that share batched status requests.

    A listing group (``lists``: the preset's batch lists the scope's active runs, so its cost
    does not shrink with fewer waits) flushes once per poll interval (its ``window``) and reads
    every page of the listing, or reads the runs on their own when that takes fewer requests.
    Its answers carry ``read_at`` a little (``fresh``) before the flush: each wait then asks
    for its next check that much ahead of the group's next flush, so the whole group stays in
    one flush per interval despite the loop's lag, and each wait still gets a status exactly
    one interval after the last. A wait that asks late anyway, within ``fresh`` after a flush,
    is answered from that flush's complete listing; a run the listing does not show (ended, or
    too new to be listed: a new wait's first check) joins the next flush, whose listing or
    ended-runs listing shows it, instead of a read of its own per wait.
    """

    def __init__(self, run: Runner, window: float, context: Any, *, lists: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._run = run
        self._wall = wall
        self._listed_wall: float | None = None  # wall time the last complete listing began
        self.window = window
        self._context = context
        self.lists = lists
        self._clock = clock
        self.fresh = min(window / 4, MAX_FRESH) if lists else 0.0
        self._slots: dict[float, _Slot] = {}  # flush time -> the checks due then
        self._last = -math.inf
        self._tasks: set[asyncio.Task[None]] = set()
        self._listing: dict[str, RunStatus] | None = None
        self._listing_at = -math.inf  # loop time of the flush that read it
        self._listing_read = 0.0  # the same moment on the engine's clock
        self.fallback = False  # the target has no batch endpoint: per-run polls for good
        self.batches = 0  # batched requests sent (for tests and benchmarks)

    def poll(self, check: PollRun) -> Awaitable[Poll]:
        """The check's answer, to await. Not a coroutine: the future it returns is all a
        waiting check holds for its interval (fewer long-lived objects for the collector)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if check.after <= 0 and self._listing is not None and now - self._listing_at <= self.fresh:
            status = self._listing.get(check.run_id)
            if status is not None:
                check.read_at = self._listing_read - self.fresh
                return _ready(loop, status)
            # Not listed (too new, or ended): the next flush's listing (or its ended-runs
            # listing) answers it, not a read of its own. At start-up thousands of new waits
            # ask just after a flush: one read each would be thousands of requests.
        # The check joins the flush due when it is (``after`` from now): one timer per flush,
        # none per wait.
        slot = flush_at(now + check.after, self.window, self._last)
        due = self._slots.get(slot)
        if due is None:
            due = self._slots[slot] = _Slot()
            loop.call_at(slot, self._flush_now, slot, context=self._context)
        fut: asyncio.Future[Poll] = loop.create_future()
        due.checks.append(check)
        due.futs.append(fut)
        return fut

    def _flush_now(self, when: float) -> None:
        batch = self._slots.pop(when, None) or _Slot()
        self._last = max(self._last, when)
        # The timer runs this in the batch's context (call_at(context=...)) and the task copies
        # it. Not create_task(context=...): a 3.11 keyword; on 3.10 the TypeError lands in the
        # loop's exception handler and every wait of the flush hangs.
        task = asyncio.get_running_loop().create_task(self._flush(batch, when))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _single(self, slot: _Slot, first: int, stamp: float | None = None) -> None:
        """One run read on its own; the answer goes to every wait on that run."""
        check = slot.checks[first]
        try:
            got: Poll = await self._run(check.flows.poll(check.run_id))
        except Exception as exc:  # the wait's own poll would have raised it
            _settle(slot, first, exc)
            return
        _settle(slot, first, got, stamp)

    async def _read_listing(self, leader: JobFlows, ids: list[str],
                            by_id: dict[str, int],
                            page: Callable[[int], HttpCall | None]) -> list[Any]:
        """A paged listing (``page(offset)``): page one, then the rest of it at once when that
        is no more requests than reading on their own the runs page one did not show."""
        first_call = page(0)
        if first_call is None:
            return []
        self.batches += 1
        first = await self._run(leader.poll_batch(ids, first_call))
        if not isinstance(first, BatchPage):
            return [first]
        size = len(first.found)
        # A listing that does not say its size: as many pages as runs asked for.
        end = first.total if first.total is not None else len(ids)
        missing = sum(1 for rid in by_id if rid not in first.found)
        # The reply's total is untrusted: count the pages before building any of them.
        pages = -(-(end - size) // size) if size and end > size else 0
        if not pages or pages > missing:
            return [first]
        offsets = range(size, end, size)
        calls = [c for o in offsets if (c := page(o)) is not None]
        self.batches += len(calls)
        more = await asyncio.gather(*(self._run(leader.poll_batch(ids, c)) for c in calls))
        return [first, *more]

    async def _pages(self, leader: JobFlows, ids: list[str],
                     by_id: dict[str, int]) -> list[Any]:
        """The batch's pages: the runs asked for, or for a listing group the active listing."""
        preset = leader.preset
        if self.lists:
            return await self._read_listing(leader, ids, by_id, preset.batch_page)
        calls = preset.batch_calls(ids)
        self.batches += len(calls)
        return list(await asyncio.gather(*(self._run(leader.poll_batch(ids, c)) for c in calls)))

    async def _ended(self, slot: _Slot, leader: JobFlows, ids: list[str],
                     by_id: dict[str, int], stamp: float | None) -> None:
        """Runs that left the active listing: read by id where the target can (one request per
        page), else from the listing of runs that ended since the last complete one began
        (less a margin for the target's clock). Found runs are settled; the rest stay."""
        by_ids = leader.preset.batch_ended_calls(list(by_id)) if len(by_id) > 1 else None
        if by_ids is not None:  # the target reads runs by id: no listing since a time needed
            self.batches += len(by_ids)
            pages: list[Any] = list(await asyncio.gather(
                *(self._run(leader.poll_batch(ids, c)) for c in by_ids)))
        else:
            if self._listed_wall is None or len(by_id) < 2:
                return
            since = datetime.fromtimestamp(self._listed_wall - ENDED_MARGIN, timezone.utc)
            pages = await self._read_listing(
                leader, ids, by_id, lambda offset: leader.preset.batch_ended_page(since, offset))
        for page in pages:
            if isinstance(page, BatchPage):
                for rid, status in page.found.items():
                    if rid in by_id and status.state.terminal:
                        _settle(slot, by_id.pop(rid), status, stamp)

    async def _flush(self, batch: _Slot, when: float) -> None:
        read_at = self._clock()
        read_wall = self._wall()
        # run id -> index of its first check: str -> int, a dict the garbage collector does
        # not track (one list per run here was a tracked object per wait per flush).
        by_id: dict[str, int] = {}
        futs = batch.futs
        for i, check in enumerate(batch.checks):
            if futs[i].done():
                continue
            at = by_id.setdefault(check.run_id, i)
            if at != i:  # another wait on the same run, in the same flush
                if batch.dup is None:
                    batch.dup = {}
                batch.dup.setdefault(at, []).append(i)
        if not by_id:
            return
        stamp = read_at - self.fresh if self.lists else None
        if self.fallback or len(by_id) == 1:
            # One run: its own status request is the cheaper one for the target.
            await asyncio.gather(*(self._single(batch, i, stamp) for i in by_id.values()))
            return
        ids = list(by_id)
        leader = batch.checks[next(iter(by_id.values()))].flows
        try:
            pages = await self._pages(leader, ids, by_id)
        except Exception as exc:  # e.g. a secret that cannot be resolved: as each poll would
            for i in by_id.values():
                _settle(batch, i, exc)
            return
        failed: Outcome | None = None
        alone = False  # runs the batch did not show are read on their own
        listing: dict[str, RunStatus] | None = {} if self.lists else None
        for page in pages:
            if isinstance(page, BatchPage):
                if listing is not None:
                    listing.update(page.found)
                for rid, status in page.found.items():
                    if rid in by_id:
                        _settle(batch, by_id.pop(rid), status, stamp)
                continue
            listing = None
            if page is None:  # a reply too large to read: this time, per run
                alone = True
            elif page.reply is not None and page.reply.status_code in NO_BATCH_STATUSES:
                if not self.fallback:
                    self.fallback = True
                    logger.warning(
                        "batched status polls: %s answered HTTP %d; the runs of this target "
                        "are polled one by one from now on",
                        leader._safe_url(leader.preset.batch_page(0).url if self.lists
                                         else leader.preset.batch_calls(ids)[0].url),
                        page.reply.status_code)
                alone = True
            else:
                failed = page
        first = pages[0] if pages else None
        complete = (listing is not None and isinstance(first, BatchPage)
                    and first.total is not None and len(listing) >= first.total)
        if complete and listing is not None:
            self._listing, self._listing_at, self._listing_read = listing, when, read_at
        else:
            self._listing = None
        if by_id and failed is None and not alone and self.lists:
            try:
                await self._ended(batch, leader, ids, by_id, stamp)
            except Exception:  # the runs are read on their own below, as without the listing
                logger.debug("batched status polls: the ended-runs listing failed",
                             exc_info=True)
        if complete:
            self._listed_wall = read_wall
        if failed is not None and not alone:
            # Which page would have shown a run is not known: every run not shown gets the
            # failed check, as its own poll would have.
            for i in by_id.values():
                _settle(batch, i, failed)
            return
        if by_id:
            await asyncio.gather(*(self._single(batch, i, stamp) for i in by_id.values()))
