"""The status server every contender polls: its own process, raw asyncio, HTTP/1.1 keep-alive.

Run as ``python -m benchmarks._server``; it prints one JSON line ``{"port": P, "control": C}``
and serves until stdin closes (so it never outlives the runner).

Data port (what the contenders talk to); every run walks queued -> running -> success, one
state step per poll, ``polls`` polls in all (``/reset?polls=K``, default 4):

- ``GET  /api/v2/dags/{dag}/dagRuns/{run_id}``  Airflow-REST-like JSON (trigrun's preset).
- ``POST /api/v2/dags/{dag}/dagRuns``            a fresh DAG run (trigger-overhead benchmark).
- ``GET  /sensor/{run_id}``                      404 until the run is done, then 200
                                                 (``HttpSensorTrigger`` only treats 404 as
                                                 "not yet").
- ``GET  /api/v2/accounts/1/runs/{id}/``         dbt-Cloud-like JSON (the aiohttp loop).

With ``/reset?polls=K&interval=S`` (the batched-poll benchmark) a run's state follows the
clock instead: it is first seen queued, running from one interval later, success ``K - 1``
intervals after it was first seen, however often it is read; and

- ``GET  /api/v2/dags/{dag}/dagRuns?state=queued&state=running&order_by=id&limit=L&offset=O``
  lists the DAG's active runs (the ones seen so far, paged), as Airflow 3's API does;
  ``?end_date_gte=T&...`` lists the runs that ended since T.

With ``&n=N&targets=T&spread=S`` the reset also triggers the runs ``run__{i:06d}`` (DAG
``bench{i % T}``) at ``i * S / N`` seconds from now: each is listed from when it was triggered,
as Airflow lists a run from its creation, not from its first read. Those runs are indexed in
trigger order per DAG, so a page of the listing costs its own runs, not a scan of all of them.

Control port: ``/reset?polls=K[&interval=S][&n=N&targets=T&spread=S]`` clears all counters; ``/stats`` returns accepted connections,
requests, the most connections open at once and, per run, the gaps between its polls (from
which the runner computes poll lateness). Arrival times are taken when a request is parsed, on
this process's monotonic clock, so the client's own clock cannot flatter it.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import sys
import time
from collections import defaultdict
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

AIRFLOW_PREFIX = "/api/v2/dags/"
DBT_PREFIX = "/api/v2/accounts/1/runs/"
SENSOR_PREFIX = "/sensor/"


def _airflow_run(dag: str, run_id: str, state: str) -> bytes:
    # The fields Airflow 3's API returns for a DAG run, so the body is of realistic size.
    return json.dumps({
        "dag_run_id": run_id, "dag_id": dag, "dag_display_name": dag,
        "logical_date": None, "queued_at": "2026-01-01T00:00:00.000000Z",
        "start_date": "2026-01-01T00:00:01.000000Z" if state != "queued" else None,
        "end_date": "2026-01-01T00:00:09.000000Z" if state == "success" else None,
        "duration": 8.0 if state == "success" else None,
        "data_interval_start": None, "data_interval_end": None,
        "run_after": "2026-01-01T00:00:00.000000Z", "last_scheduling_decision": None,
        "run_type": "manual", "state": state, "triggered_by": "rest_api",
        "triggering_user_name": "admin", "conf": {"source": "benchmark"}, "note": None,
        "dag_versions": [], "bundle_version": None,
    }).encode()


_DBT_STATUS = {"queued": 1, "running": 3, "success": 10}


def _dbt_run(run_id: str, state: str) -> bytes:
    code = _DBT_STATUS[state]
    return json.dumps({
        "status": {"code": 200, "is_success": True, "user_message": "Success!",
                   "developer_message": ""},
        "data": {
            "id": int(run_id) if run_id.isdigit() else run_id, "trigger_id": 1, "account_id": 1,
            "environment_id": 1, "project_id": 1, "job_definition_id": 1, "status": code,
            "dbt_version": "1.9.0", "git_branch": "main", "git_sha": "0" * 40,
            "status_message": None, "owner_thread_id": None,
            "created_at": "2026-01-01 00:00:00.000000+00:00",
            "updated_at": "2026-01-01 00:00:09.000000+00:00",
            "dequeued_at": "2026-01-01 00:00:01.000000+00:00",
            "started_at": "2026-01-01 00:00:01.000000+00:00",
            "finished_at": "2026-01-01 00:00:09.000000+00:00" if code == 10 else None,
            "in_progress": code in (1, 3), "is_complete": code == 10,
            "is_success": code == 10, "is_error": False, "is_cancelled": False,
            "href": f"http://dbt.local/deploy/1/projects/1/runs/{run_id}/",
        },
    }).encode()


class State:
    def __init__(self) -> None:
        self.open = 0
        self.reset(4)

    def reset(self, polls: int, interval: float | None = None) -> None:
        self.polls = polls
        self.interval = interval  # set: states follow the clock (batched polls)
        self.first_seen: dict[str, float] = {}
        self.active: dict[str, dict[str, float]] = defaultdict(dict)  # dag -> run -> first seen
        # Runs triggered on a schedule (``n``/``spread`` of the reset): per DAG, trigger times
        # and ids in trigger order (the index), and run -> trigger time.
        self.sched: dict[str, tuple[list[float], list[str]]] = {}
        self.sched_first: dict[str, float] = {}
        self.reads: list[float] = []  # arrival of every status request (list or single)
        self.connections = 0
        # Connections still open from before the reset stay counted as open.
        self.max_open = self.open
        self.requests = 0
        self.by_kind: dict[str, int] = defaultdict(int)
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.started = time.monotonic()

    def schedule(self, n: int, targets: int, spread: float) -> None:
        for i in range(n):
            dag, run_id = f"bench{i % targets}", f"run__{i:06d}"
            first = self.started + i * spread / n
            firsts, ids = self.sched.setdefault(dag, ([], []))
            firsts.append(first)
            ids.append(run_id)
            self.sched_first[run_id] = first

    def _span(self) -> float:
        assert self.interval is not None
        return (self.polls - 1.5) * self.interval

    def _live(self, dag: str, now: float) -> tuple[list[str], int, int, list[str]]:
        """The DAG's runs not ended at ``now``: the scheduled ones as a slice of the index
        (ids, lo, hi), then the others (read before they were listed, e.g. warm-up runs)."""
        firsts, ids = self.sched.get(dag, ([], []))
        lo = bisect.bisect_right(firsts, now - self._span())
        hi = bisect.bisect_right(firsts, now)
        other = [run_id for run_id, first in self.active[dag].items()
                 if run_id not in self.sched_first and now < self._end_at(first)]
        return ids, lo, hi, other

    def _end_at(self, first: float) -> float:
        # success from K - 1 intervals after first seen (reads land near whole intervals)
        assert self.interval is not None
        return first + (self.polls - 1.5) * self.interval

    def timed(self, dag: str, run_id: str, now: float) -> str:
        assert self.interval is not None
        first = self.sched_first.get(run_id)
        if first is None:
            first = self.active[dag].setdefault(run_id, now)
        if now >= self._end_at(first):
            return "success"
        step = int((now - first) / self.interval + 0.5)
        return "queued" if step == 0 else "running"

    def ended(self, dag: str, since: str, limit: int, offset: int, now: float) -> bytes:
        # Runs end on the clock, whether read or not; `since` is a wall time.
        after = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
        to_wall = time.time() - now
        firsts, sched_ids = self.sched.get(dag, ([], []))
        span = self._span()
        lo = bisect.bisect_left(firsts, after - to_wall - span)
        hi = bisect.bisect_right(firsts, now - span)
        ids = sched_ids[lo:hi] if hi > lo else []
        ids += [run_id for run_id, first in self.active[dag].items()
                if run_id not in self.sched_first
                and (end := self._end_at(first)) <= now and end + to_wall >= after]
        runs = [_airflow_run(dag, run_id, "success") for run_id in ids[offset:offset + limit]]
        return b'{"dag_runs":[%s],"total_entries":%d}' % (b",".join(runs), len(ids))

    def listing(self, dag: str, limit: int, offset: int, now: float) -> bytes:
        # The runs not ended at this read, in trigger order: as on a real server, a run that
        # ends between two page reads moves the later pages by one. Scheduled runs come from
        # the index (a page costs its own runs), the few others from a scan.
        ids, lo, hi, other = self._live(dag, now)
        total = max(0, hi - lo) + len(other)
        page = ids[lo + offset:min(hi, lo + offset + limit)] if lo + offset < hi else []
        rest = limit - len(page)
        if rest > 0:
            start = max(0, offset - max(0, hi - lo))
            page = [*page, *other[start:start + rest]]
        runs = [_airflow_run(dag, run_id, self.timed(dag, run_id, now)) for run_id in page]
        return b'{"dag_runs":[%s],"total_entries":%d}' % (b",".join(runs), total)

    def step(self, key: str, now: float) -> str:
        seen = self.arrivals[key]
        seen.append(now)
        n = len(seen)
        if n >= self.polls:
            return "success"
        return "queued" if n == 1 else "running"

    def stats(self) -> dict[str, Any]:
        gaps = []
        counts = []
        for times in self.arrivals.values():
            counts.append(len(times))
            gaps.extend(b - a for a, b in itertools.pairwise(times))
        return {"connections": self.connections, "max_open": self.max_open,
                "open": self.open, "requests": self.requests, "by_kind": dict(self.by_kind),
                "runs": len(self.arrivals), "polls_per_run": counts, "gaps": gaps,
                "elapsed": time.monotonic() - self.started,
                "reads": [t - self.started for t in self.reads]}


STATE = State()
_REASONS = {200: b"OK", 404: b"Not Found", 400: b"Bad Request"}


def _response(status: int, body: bytes, close: bool) -> bytes:
    head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            % (status, _REASONS.get(status, b"X"), len(body)))
    if close:
        head += b"connection: close\r\n"
    return head + b"\r\n" + body


def handle_data(method: str, target: str, body: bytes, now: float) -> tuple[int, bytes]:
    path = target.split("?", 1)[0]
    st = STATE
    st.requests += 1
    if path.startswith(AIRFLOW_PREFIX):
        rest = path[len(AIRFLOW_PREFIX):]
        dag, _, tail = rest.partition("/dagRuns")
        if method == "POST" and tail in ("", "/"):
            st.by_kind["trigger"] += 1
            try:
                run_id = str(json.loads(body).get("dag_run_id") or "manual__x")
            except ValueError:
                run_id = "manual__x"
            return 200, _airflow_run(dag, run_id, "queued")
        if method == "GET" and tail.startswith("/"):
            run_id = tail[1:]
            st.by_kind["airflow"] += 1
            if st.interval is not None:
                st.reads.append(now)
                return 200, _airflow_run(dag, run_id, st.timed(dag, run_id, now))
            return 200, _airflow_run(dag, run_id, st.step("a:" + run_id, now))
        if method == "GET" and tail in ("", "/") and st.interval is not None:
            query = parse_qs(urlsplit(target).query)
            st.reads.append(now)
            if "end_date_gte" in query:
                st.by_kind["airflow_ended"] += 1
                return 200, st.ended(dag, query["end_date_gte"][0],
                                     int(query.get("limit", ["100"])[0]),
                                     int(query.get("offset", ["0"])[0]), now)
            st.by_kind["airflow_list"] += 1
            return 200, st.listing(dag, int(query.get("limit", ["100"])[0]),
                                   int(query.get("offset", ["0"])[0]), now)
    elif path.startswith(DBT_PREFIX) and method == "GET":
        run_id = path[len(DBT_PREFIX):].strip("/")
        st.by_kind["dbt"] += 1
        return 200, _dbt_run(run_id, st.step("d:" + run_id, now))
    elif path.startswith(SENSOR_PREFIX) and method == "GET":
        run_id = path[len(SENSOR_PREFIX):]
        st.by_kind["sensor"] += 1
        if st.step("s:" + run_id, now) == "success":
            return 200, b'{"state":"success"}'
        return 404, b'{"detail":"Not Found"}'
    return 404, b'{"detail":"no such route"}'


def handle_control(method: str, target: str, body: bytes, now: float) -> tuple[int, bytes]:
    parts = urlsplit(target)
    if parts.path == "/reset":
        query = parse_qs(parts.query)
        polls = int(query.get("polls", ["4"])[0])
        interval = float(query["interval"][0]) if "interval" in query else None
        STATE.reset(polls, interval)
        if "n" in query and interval is not None:
            STATE.schedule(int(query["n"][0]), int(query.get("targets", ["1"])[0]),
                           float(query.get("spread", ["0"])[0]))
        return 200, b'{"ok":true}'
    if parts.path == "/stats":
        return 200, json.dumps(STATE.stats()).encode()
    return 404, b"{}"


class HttpProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1: Content-Length bodies, keep-alive, pipelining; no chunked uploads."""

    def __init__(self, handler: Any, counted: bool) -> None:
        self.handler = handler
        self.counted = counted
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        if self.counted:
            STATE.connections += 1
            STATE.open += 1
            STATE.max_open = max(STATE.max_open, STATE.open)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            STATE.open -= 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        close = False
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, _version = lines[0].split(" ", 2)
            except ValueError:
                out.append(_response(400, b"{}", True))
                close = True
                break
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                lname = name.strip().lower()
                if lname == "content-length":
                    length = int(value.strip())
                elif lname == "connection" and value.strip().lower() == "close":
                    close = True
            total = end + 4 + length
            if len(self.buf) < total:
                break
            body = self.buf[end + 4:total]
            self.buf = self.buf[total:]
            status, payload = self.handler(method, target, body, time.monotonic())
            out.append(_response(status, payload, close))
            if close:
                break
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
            if close:
                self.transport.close()


async def serve() -> None:
    loop = asyncio.get_running_loop()
    data = await loop.create_server(lambda: HttpProtocol(handle_data, True), "127.0.0.1", 0,
                                    backlog=4096)
    control = await loop.create_server(lambda: HttpProtocol(handle_control, False),
                                       "127.0.0.1", 0)
    ports = {"port": data.sockets[0].getsockname()[1],
             "control": control.sockets[0].getsockname()[1]}
    sys.stdout.write(json.dumps(ports) + "\n")
    sys.stdout.flush()
    # Serve until the runner closes our stdin (or dies).
    await loop.run_in_executor(None, sys.stdin.read)
    data.close()
    control.close()


def main() -> None:
    try:
        import uvloop  # a faster server leaves more of the machine to the contenders

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())


if __name__ == "__main__":
    main()
