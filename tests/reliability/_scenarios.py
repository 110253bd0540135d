"""The fault scenarios: how each one arms the fault server, and what trigrun must do.

A scenario's ``arm`` scripts fresh ``FaultServer``s for one test and returns the job spec (its
name is the test's own) with the ground truth to check against: how many trigger requests
reached a server and how many runs the target started. ``Expect`` is the *correct* behaviour;
where trigrun does otherwise today the scenario names the bug and the test is a strict xfail.
"""

from __future__ import annotations

import base64
import itertools
import select
import socket
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

from tests.helpers.fakes import FakeAirflow, FakeDagster, FakeDbtCloud
from tests.helpers.faults import (
    ExpiringAirflow,
    Fault,
    FaultServer,
    RunTarget,
    TLSFiles,
    lost_reply,
)
from tests.helpers.httpserver import Recorded, Reply, closed_port
from tests.helpers.proxy import ForwardProxy

from ._secrets import KEY, PROXY_USER, TOKEN

SECRET_HEADERS = {"Authorization": "Bearer secret://rel_token", "X-Api-Key": "secret://rel_key"}
RETRY = {"max_attempts": 4, "initial_backoff_seconds": 0.05, "max_backoff_seconds": 0.2,
         "jitter": 0}
TIMEOUT = 1.5  # request.timeout_seconds of every scenario (roomy: CI machines are shared)
POLL = 0.05


@dataclass
class Rig:
    """Fresh servers for one test, the session's TLS files and the job's (unique) name."""

    job: str
    tls: TLSFiles
    servers: list[FaultServer] = field(default_factory=list)
    proxies: list[ForwardProxy] = field(default_factory=list)

    def server(self, *, tls: bool = False) -> FaultServer:
        srv = FaultServer(tls=self.tls if tls else None).start()
        self.servers.append(srv)
        return srv

    def proxy(self, proxy: ForwardProxy) -> ForwardProxy:
        self.proxies.append(proxy.__enter__())
        return proxy

    def close(self) -> None:
        for srv in self.servers:
            srv.stop()
        for proxy in self.proxies:
            proxy.__exit__(None, None, None)


@dataclass
class Armed:
    spec: dict[str, Any]
    trigger_requests: Callable[[], int]  # trigger requests that reached a server
    runs: Callable[[], int]  # runs the target started for this job
    proofs: Callable[[], None] = lambda: None  # scenario-specific checks (server side)
    secrets: Callable[[], list[str]] = list  # more values that must never show up (JWTs)


@dataclass(frozen=True)
class Expect:
    trigger_ok: bool
    state: str | None  # how the wait ends; None when nothing is waited on
    attempts: tuple[str, ...]
    runs: int
    adopted: bool = False
    status: int | None = None  # the HTTP status the result records, when checked
    says: tuple[str, ...] = ()  # regexes the error / run message must match
    seconds: tuple[float, float] = (0.0, 3.0)  # engine bounds; orchestrators add their start-up


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    arm: Callable[[Rig], Armed]
    expect: Expect
    bug: str | None = None  # the product bug this scenario exposes (strict xfail)


# -- helpers ---------------------------------------------------------------------------------


def hook_spec(rig: Rig, target: RunTarget, url: str | None = None,
              **request: Any) -> dict[str, Any]:
    """A webhook job that sends two secret headers and waits on the target's status URL."""
    return {
        "name": rig.job,
        "request": {"url": url or target.url, "method": "POST", "headers": dict(SECRET_HEADERS),
                    "body": {"job": rig.job}, "timeout_seconds": TIMEOUT, **request},
        "retry_policy": dict(RETRY),
        "wait": {"status_url": target.status_url(), "run_id_path": "run_id",
                 "status_path": "status", "poll_interval_seconds": POLL, "timeout_seconds": 30},
    }


def posts(srv: FaultServer, path: str = "/trigger") -> Callable[[], int]:
    return lambda: len(srv.requests_to(path, "POST"))


def echo_page(status: int, title: str) -> Callable[[Recorded], Reply]:
    """An HTML error page that quotes the request's credentials back, as some proxies do."""

    def handler(req: Recorded) -> Reply:
        body = (f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
                f"<pre>Authorization: {req.headers.get('authorization')}\n"
                f"X-Api-Key: {req.headers.get('x-api-key')}</pre></body></html>")
        return Reply(status, body=body, headers={"Content-Type": "text/html; charset=utf-8"})

    return handler


def _simple(rig: Rig, script: Callable[[RunTarget], list[Any]],
            states: list[str] | None = None, **request: Any) -> Armed:
    srv = rig.server()
    target = RunTarget(srv, states=states)
    srv.on("POST", "/trigger", *script(target))
    return Armed(hook_spec(rig, target, **request), posts(srv),
                 lambda: len(target.runs_for(rig.job)))


def _gap_at_least(srv: FaultServer, seconds: float) -> Callable[[], None]:
    def check() -> None:
        first, second = srv.requests_to("/trigger", "POST")[:2]
        assert second.at - first.at >= seconds, second.at - first.at

    return check


def _same_key(srv: FaultServer) -> None:
    keys = {r.headers.get("idempotency-key") for r in srv.requests_to("/trigger", "POST")}
    assert None not in keys
    assert len(keys) == 1, keys


# -- the scenarios ---------------------------------------------------------------------------


def arm_5xx(rig: Rig) -> Armed:
    return _simple(rig, lambda t: [Reply(500), Reply(502), echo_page(503, "Service Unavailable"),
                                   t.trigger])


def arm_429_seconds(rig: Rig) -> Armed:
    armed = _simple(rig, lambda t: [Reply(429, json={"error": "slow down"},
                                          headers={"Retry-After": "1"}), t.trigger])
    srv = rig.servers[-1]
    armed.proofs = _gap_at_least(srv, 1.0)
    return armed


def arm_429_date(rig: Rig) -> Armed:
    def later(req: Recorded) -> Reply:
        when = datetime.now(timezone.utc) + timedelta(seconds=2)
        return Reply(429, json={"error": "slow down"},
                     headers={"Retry-After": format_datetime(when, usegmt=True)})

    armed = _simple(rig, lambda t: [later, t.trigger])
    # An HTTP-date has whole seconds: "now + 2 s" is between 1 and 2 s away when it is read.
    armed.proofs = _gap_at_least(rig.servers[-1], 1.0)
    return armed


def arm_refused(rig: Rig) -> Armed:
    srv = rig.server()
    target = RunTarget(srv)
    spec = hook_spec(rig, target, url=f"http://127.0.0.1:{closed_port()}/trigger")
    return Armed(spec, posts(srv), lambda: len(target.runs_for(rig.job)))


def _lost(fault: Fault | Reply) -> Callable[[RunTarget], list[Any]]:
    return lambda t: [lost_reply(t.trigger, fault), t.trigger]


def _with_same_key(armed: Armed, rig: Rig) -> Armed:
    srv = rig.servers[-1]
    armed.proofs = lambda: _same_key(srv)
    return armed


def arm_reset_before(rig: Rig) -> Armed:
    return _with_same_key(_simple(rig, _lost(Fault(reset="before_status"))), rig)


def arm_reset_mid(rig: Rig) -> Armed:
    def script(t: RunTarget) -> list[Any]:
        def cut(req: Recorded) -> Reply:
            started = t.trigger(req)  # the run starts; its reply is cut halfway
            return Fault(200, json={**started.json, "detail": "x" * 2000}, reset="mid_body")

        return [cut, t.trigger]

    return _with_same_key(_simple(rig, script), rig)


def arm_slow_headers(rig: Rig) -> Armed:
    return _with_same_key(_simple(rig, _lost(Reply(200, json={"ok": True}, delay=TIMEOUT * 4))),
                          rig)


def arm_trickle(rig: Rig) -> Armed:
    fault = Fault(200, body='{"run_id": "run-1", "status": "queued", "pad": "', trickle=0.1)
    return _with_same_key(_simple(rig, _lost(fault)), rig)


def arm_malformed_json(rig: Rig) -> Armed:
    def broken(t: RunTarget) -> Callable[[Recorded], Reply]:
        def handler(req: Recorded) -> Reply:
            started = t.trigger(req)
            text = (f'{{"run_id": "{started.json["run_id"]}", "status": "queued", '
                    f'"you_sent": "{req.headers.get("authorization")}", ')
            return Reply(200, body=text, headers={"Content-Type": "application/json"})
        return handler

    return _simple(rig, lambda t: [broken(t)])


def arm_html(rig: Rig) -> Armed:
    # A proxy's 502 page, then an SSO login page with 200: neither ever reaches the target.
    return _simple(rig, lambda t: [echo_page(502, "Bad Gateway"), echo_page(200, "Sign in")])


def arm_10mb(rig: Rig) -> Armed:
    def huge(t: RunTarget) -> Callable[[Recorded], Reply]:
        def handler(req: Recorded) -> Reply:
            started = t.trigger(req)
            return Reply(200, json={**started.json, "log": "x" * 10_000_000})
        return handler

    return _simple(rig, lambda t: [huge(t)])


def arm_redirect_loop(rig: Rig) -> Armed:
    # 307: the POST stays a POST on every hop (a 302 would turn it into a GET, as httpx does).
    armed = _simple(rig, lambda t: [Reply(307, headers={"Location": "/trigger"})],
                    follow_redirects=True)
    srv = rig.servers[-1]

    def bounded() -> None:
        assert 2 <= len(srv.requests_to("/trigger", "POST")) <= 10

    armed.proofs = bounded
    return armed


def arm_cross_origin(rig: Rig) -> Armed:
    front = rig.server()
    back = rig.server()  # another port: another origin
    target = RunTarget(back)
    front.on("POST", "/trigger", Reply(307, headers={"Location": target.url}))
    spec = hook_spec(rig, target, url=front.url + "/trigger", follow_redirects=True)

    def proofs() -> None:
        (sent,) = front.requests_to("/trigger", "POST")
        assert sent.headers["authorization"] == f"Bearer {TOKEN}"
        assert sent.headers["x-api-key"] == KEY
        (moved,) = back.requests_to("/trigger", "POST")
        assert "authorization" not in moved.headers
        assert "x-api-key" not in moved.headers
        assert moved.headers.get("idempotency-key") == sent.headers.get("idempotency-key")

    return Armed(spec, lambda: posts(front)() + posts(back)(),
                 lambda: len(target.runs_for(rig.job)), proofs)


def arm_tls(rig: Rig, *, trust: bool) -> Armed:
    srv = rig.server(tls=True)
    target = RunTarget(srv)
    extra = {"verify": str(rig.tls.cert)} if trust else {}
    spec = hook_spec(rig, target, **extra)

    def proofs() -> None:
        if not trust:  # the handshake failed: not one byte of the request was sent
            assert srv.requests == []
            assert srv.tls_failures >= 1

    return Armed(spec, posts(srv), lambda: len(target.runs_for(rig.job)), proofs)


def arm_flapping(rig: Rig) -> Armed:
    srv = rig.server()
    target = RunTarget(srv, states=["running", "success"])
    srv.on("POST", "/trigger", target.trigger)
    srv.on("GET", "/runs/{run_id}", Reply(500), target.status, Reply(500), target.status)

    def proofs() -> None:
        polls = srv.requests_to(None, "GET")
        assert len(polls) == 4
        gaps = [b.at - a.at for a, b in itertools.pairwise(polls)]
        # Never a hot loop: the interval between polls, a 1 s backoff after each 500.
        assert gaps[0] >= 0.9, gaps
        assert gaps[2] >= 0.9, gaps
        # Polls run at a fixed rate (one interval from send to send), never sooner than half an
        # interval after the previous answer. Measured here at the server, where a request
        # delayed in the client's send by a loaded machine shortens the gap that follows it.
        assert gaps[1] >= POLL * 0.5, gaps

    return Armed(hook_spec(rig, target), posts(srv), lambda: len(target.runs_for(rig.job)),
                 proofs)


def arm_unknown_status(rig: Rig) -> Armed:
    armed = _simple(rig, lambda t: [t.trigger], states=["running", "paused_by_admin"])
    srv = rig.servers[-1]

    def stopped_at_once() -> None:
        assert len(srv.requests_to(None, "GET")) == 2  # no polling on after an unknown state

    armed.proofs = stopped_at_once
    return armed


def arm_jwt(rig: Rig) -> Armed:
    srv = rig.server()
    fake = ExpiringAirflow(srv, username="robot", password=TOKEN, expire_on_read=2,
                           states=["queued", "running", "running", "success"])
    issued: list[str] = []
    token = fake._token

    def record(req: Recorded) -> Reply:
        reply = token(req)
        if isinstance(reply.json, dict) and reply.json.get("access_token"):
            issued.append(reply.json["access_token"])
        return reply

    srv.on("POST", "/auth/token", record)
    spec = {"name": rig.job,
            "target": {"type": "airflow", "base_url": srv.url, "dag_id": "nightly_etl",
                       "conf": {"source": rig.job}},
            "auth": {"type": "airflow_password", "username": "robot",
                     "password": "secret://rel_token"},
            "retry_policy": dict(RETRY),
            "wait": {"poll_interval_seconds": POLL, "timeout_seconds": 30}}

    def proofs() -> None:
        assert fake.expired == 1
        assert fake.unauthorized == 1  # one 401, one refresh: no loop
        assert len(issued) >= 2

    return Armed(spec, posts(srv, "/api/v2/dags/nightly_etl/dagRuns"),
                 lambda: len(fake.runs), proofs, lambda: list(issued))


def arm_202(rig: Rig) -> Armed:
    def accepted(t: RunTarget) -> Callable[[Recorded], Reply]:
        def handler(req: Recorded) -> Reply:
            t.trigger(req)  # the work starts, but its id is not returned
            return Reply(202, json={"accepted": True})
        return handler

    return _simple(rig, lambda t: [accepted(t)])


# Exactly once, per preset: the reply to the trigger is lost after the run started.


def arm_airflow_lost(rig: Rig) -> Armed:
    srv = rig.server()
    fake = FakeAirflow(srv, username="robot", password=TOKEN, states=["running", "success"])
    path = "/api/v2/dags/{dag_id}/dagRuns"
    srv.on("POST", path, lost_reply(fake._trigger, Fault(reset="mid_body", json={"x": 1})),
           fake._trigger)
    spec = {"name": rig.job,
            "target": {"type": "airflow", "base_url": srv.url, "dag_id": "nightly_etl"},
            "auth": {"type": "airflow_password", "username": "robot",
                     "password": "secret://rel_token"},
            "retry_policy": dict(RETRY), "wait": {"poll_interval_seconds": POLL}}
    return Armed(spec, posts(srv, "/api/v2/dags/nightly_etl/dagRuns"), lambda: len(fake.runs))


def arm_dbt_lost(rig: Rig) -> Armed:
    srv = rig.server()
    fake = FakeDbtCloud(srv, statuses=[3, 10])
    path = f"/api/v2/accounts/{fake.account_id}/jobs/{fake.job_id}/run/"
    srv.on("POST", path, lost_reply(fake._trigger, Fault(reset="mid_body", json={"x": 1})),
           fake._trigger)
    spec = {"name": rig.job,
            "target": {"type": "dbt_cloud", "base_url": srv.url, "account_id": fake.account_id,
                       "job_id": fake.job_id},
            "auth": {"type": "bearer", "token": "secret://rel_token"},
            "retry_policy": dict(RETRY), "wait": {"poll_interval_seconds": POLL}}
    return Armed(spec, posts(srv, path), lambda: len(fake.runs))


def arm_dagster_lost(rig: Rig) -> Armed:
    srv = rig.server()
    fake = FakeDagster(srv, statuses=["STARTED", "SUCCESS"])
    launches = {"n": 0}
    lock = threading.Lock()

    def graphql(req: Recorded) -> Reply:
        reply = fake._graphql(req)
        if "launchRun" in (req.json() or {}).get("query", ""):
            with lock:
                launches["n"] += 1
                first = launches["n"] == 1
            if first:
                return Fault(reset="mid_body", json={"x": 1})
        return reply

    srv.on("POST", "/graphql", graphql)
    spec = {"name": rig.job,
            "target": {"type": "dagster", "base_url": srv.url, "job_name": "nightly_etl",
                       "repository_location_name": "etl"},
            "auth": {"type": "bearer", "token": "secret://rel_token"},
            "retry_policy": dict(RETRY), "wait": {"poll_interval_seconds": POLL}}
    return Armed(spec, lambda: launches["n"], lambda: len(fake.runs))


# Proxy faults. The job's proxy carries credentials from secrets (user and password are
# canaries); the target is HTTPS, so every request goes through a CONNECT tunnel.


def proxy_url(port: int) -> str:
    return f"http://secret://rel_proxy_user:secret://rel_key@127.0.0.1:{port}"


def proxy_secrets() -> list[str]:
    """The proxy credentials: the user, and both as they go on the wire (Basic)."""
    return [PROXY_USER, base64.b64encode(f"{PROXY_USER}:{KEY}".encode()).decode()]


class CuttingProxy(ForwardProxy):
    """A forward proxy that cuts its first ``cuts`` CONNECT tunnels once ``cut_after`` bytes
    of the target's side went through (mid-body of the reply), and relays the rest whole."""

    def __init__(self, *, cut_after: int, cuts: int = 1) -> None:
        super().__init__()
        self.cut_after = cut_after
        self.cuts_left = cuts
        self.cut = 0

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        with self._lock:
            cut = self.cuts_left > 0
            self.cuts_left -= cut
        sent = 0
        while True:
            readable, _, _ = select.select([client, upstream], [], [], 30)
            if not readable:
                return
            for s in readable:
                data = s.recv(65536)
                if not data:
                    return
                if s is client:
                    upstream.sendall(data)
                    continue
                if cut and sent + len(data) >= self.cut_after:
                    client.sendall(data[: self.cut_after - sent])
                    with self._lock:
                        self.cut += 1
                    with suppress(OSError):
                        client.shutdown(socket.SHUT_RDWR)
                    return
                sent += len(data)
                client.sendall(data)


def _tunnels(proxy: ForwardProxy, srv: FaultServer, status: int) -> None:
    entries = proxy.entries()
    assert entries, "nothing went through the proxy"
    assert {(e.method, e.target) for e in entries} == {("CONNECT", f"127.0.0.1:{srv.port}")}
    assert {e.status for e in entries} == {status}, [e.status for e in entries]
    # Control: the credentials were resolved from their secrets and sent to the proxy.
    assert {e.proxy_authorization for e in entries} == {f"Basic {proxy_secrets()[1]}"}


def arm_proxy_down(rig: Rig) -> Armed:
    srv = rig.server(tls=True)
    target = RunTarget(srv)
    spec = hook_spec(rig, target, verify=str(rig.tls.cert), proxy=proxy_url(closed_port()))

    def proofs() -> None:
        assert srv.requests == []

    return Armed(spec, posts(srv), lambda: len(target.runs_for(rig.job)), proofs, proxy_secrets)


def arm_proxy_407(rig: Rig) -> Armed:
    srv = rig.server(tls=True)
    target = RunTarget(srv)
    # The proxy wants other credentials than the job's: 407 to every CONNECT.
    proxy = rig.proxy(ForwardProxy(credentials=(PROXY_USER, "another-password")))
    spec = hook_spec(rig, target, verify=str(rig.tls.cert), proxy=proxy_url(proxy.port))

    def proofs() -> None:
        _tunnels(proxy, srv, 407)
        assert len(proxy.entries()) == 1  # not retried: the same credentials fail again
        assert {e.auth for e in proxy.entries()} == {"wrong"}  # the job's were sent
        assert srv.requests == []

    return Armed(spec, posts(srv), lambda: len(target.runs_for(rig.job)), proofs, proxy_secrets)


def arm_proxy_cut(rig: Rig) -> Armed:
    srv = rig.server(tls=True)
    target = RunTarget(srv)
    # Past the TLS handshake and the reply's head (about 1.5 KB), well inside its 20 KB body.
    proxy = rig.proxy(CuttingProxy(cut_after=6000))

    def padded(req: Recorded) -> Reply:
        reply = target.trigger(req)
        return Reply(reply.status, json={**reply.json, "detail": "x" * 20000})

    srv.on("POST", "/trigger", padded)
    spec = hook_spec(rig, target, verify=str(rig.tls.cert), proxy=proxy_url(proxy.port))

    def proofs() -> None:
        _tunnels(proxy, srv, 200)
        assert proxy.cut == 1
        _same_key(srv)  # the retry carried the first attempt's key: the target adopted

    return Armed(spec, posts(srv), lambda: len(target.runs_for(rig.job)), proofs, proxy_secrets)


def arm_proxy_cut_no_key(rig: Rig) -> Armed:
    armed = arm_proxy_cut(rig)
    armed.spec["idempotency"] = {"enabled": False}
    srv, proxy = rig.servers[-1], rig.proxies[-1]

    def proofs() -> None:
        _tunnels(proxy, srv, 200)
        assert len(srv.requests_to("/trigger", "POST")) == 1  # not sent again

    armed.proofs = proofs
    return armed


BUG_UNREADABLE = (
    "A 2xx reply to the trigger whose run id cannot be read is recorded as status_code=None "
    "and response=None: `JobFlows.fire` (`_flow.py`) lets the preset's PresetError fall "
    "through to its outer `except (PresetError, _AuthError)`, which builds the result without "
    "the reply; and the error says \"no run id at wait.run_id_path ...; check the path\" even "
    "when the body is not JSON (an HTML login page, broken JSON) or was cut at the read limit")
BUG_UNREADABLE_202 = (
    "A 202 without a run id is recorded as status_code=None and response=None (the same "
    "`except (PresetError, _AuthError)` in `JobFlows.fire` drops the reply), so nothing says "
    "the target accepted the request with HTTP 202")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("5xx_burst", "5xx burst (500, 502, 503) then success", arm_5xx,
             Expect(True, "success", ("500", "502", "503", "200"), 1, status=200)),
    Scenario("429_seconds", "429 with Retry-After: 1 (seconds)", arm_429_seconds,
             Expect(True, "success", ("429", "200"), 1, status=200, seconds=(1.0, 4.0))),
    Scenario("429_date", "429 with Retry-After as an HTTP date (now + 2 s)", arm_429_date,
             Expect(True, "success", ("429", "200"), 1, status=200, seconds=(1.0, 5.0))),
    Scenario("refused", "Connection refused", arm_refused,
             Expect(False, None, ("refused",) * 4, 0, says=(r"connection failed", r"\[Errno 111\]", r"4 attempt"),
                    seconds=(0.3, 3.0))),
    Scenario("reset_before_status", "Reset before the status line (run already started)",
             arm_reset_before,
             Expect(True, "success", ("reset", "409"), 1, adopted=True, status=409)),
    Scenario("reset_mid_body", "Reset mid-body (run already started)", arm_reset_mid,
             Expect(True, "success", ("reset", "409"), 1, adopted=True, status=409)),
    Scenario("slow_headers", "Headers slower than the timeout (run already started)",
             arm_slow_headers,
             Expect(True, "success", ("timeout", "409"), 1, adopted=True, status=409,
                    seconds=(TIMEOUT, TIMEOUT + 5.0))),
    Scenario("trickle", "Body trickles forever (run already started)", arm_trickle,
             Expect(True, "success", ("timeout", "409"), 1, adopted=True, status=409,
                    seconds=(TIMEOUT, TIMEOUT + 5.0))),
    Scenario("malformed_json", "Malformed JSON in a 200 (run started)", arm_malformed_json,
             Expect(False, None, ("200",), 1, status=200, says=(r"HTTP 200", r"JSON"))),
    Scenario("html", "HTML error page (502), then an HTML login page (200) where JSON was "
             "expected", arm_html,
             Expect(False, None, ("502", "200"), 0, status=200, says=(r"HTTP 200", r"JSON"))),
    Scenario("10mb", "10 MB JSON body in a 200 (run started)", arm_10mb,
             Expect(False, None, ("200",), 1, status=200,
                    says=(r"HTTP 200", r"truncat|too large|larger than|read limit"),
                    seconds=(0.0, 4.0))),
    Scenario("redirect_loop", "Redirect loop (307 to itself, redirects followed)",
             arm_redirect_loop,
             Expect(False, None, ("307",), 0, status=307, says=(r"too many redirects",))),
    Scenario("cross_origin", "Cross-origin redirect (307) of a request with Authorization",
             arm_cross_origin, Expect(True, "success", ("200",), 1, status=200)),
    Scenario("tls_self_signed", "Self-signed TLS certificate, verification on",
             lambda rig: arm_tls(rig, trust=False),
             Expect(False, None, ("TLS",), 0,
                    says=(r"certificate verify failed", r"fails every retry"))),
    Scenario("tls_ca_bundle", "Self-signed TLS certificate named as the CA bundle (control)",
             lambda rig: arm_tls(rig, trust=True),
             Expect(True, "success", ("200",), 1, status=200)),
    Scenario("flapping_status", "Status endpoint flaps 500 / 200 while waiting", arm_flapping,
             Expect(True, "success", ("200",), 1, status=200, seconds=(2.0, 8.0))),
    Scenario("unknown_status", "Unknown status value while waiting", arm_unknown_status,
             Expect(True, "unknown", ("200",), 1, status=200,
                    says=(r"unknown status 'paused_by_admin'", r"running_values"))),
    Scenario("jwt_expires", "Airflow JWT expires mid-wait (401, refreshed once)", arm_jwt,
             Expect(True, "success", ("200",), 1, status=200)),
    Scenario("202_no_run_id", "202 Accepted and no run id", arm_202,
             Expect(False, None, ("202",), 1, status=202, says=(r"HTTP 202", r"run id"))),
    Scenario("airflow_lost_reply", "Airflow REST target: reply lost after the run started",
             arm_airflow_lost,
             Expect(True, "success", ("reset", "409"), 1, adopted=True, status=409)),
    Scenario("dbt_lost_reply", "dbt Cloud target: reply lost after the run started "
             "(found by lookup)", arm_dbt_lost,
             Expect(True, "success", ("reset",), 1, adopted=True)),
    Scenario("dagster_lost_reply", "Dagster GraphQL target: reply lost after the run started "
             "(found by tag)", arm_dagster_lost,
             Expect(True, "success", ("reset",), 1, adopted=True)),
    Scenario("proxy_down", "Proxy down (connection to the proxy refused), HTTPS target, "
             "proxy credentials from a secret", arm_proxy_down,
             Expect(False, None, ("refused",) * 4, 0,
                    says=(r"proxy", r"refused|Errno 111|connect call failed", r"4 attempt"),
                    seconds=(0.3, 3.0))),
    Scenario("proxy_407", "Proxy answers CONNECT with 407 (the job's proxy credentials are "
             "wrong)", arm_proxy_407,
             Expect(False, None, ("proxy 407",), 0, says=(r"407", r"credentials"))),
    Scenario("proxy_tunnel_cut", "Proxy cuts the CONNECT tunnel mid-body of the reply (run "
             "already started)", arm_proxy_cut,
             Expect(True, "success", ("reset", "409"), 1, adopted=True, status=409)),
    Scenario("proxy_tunnel_cut_no_key", "Proxy cuts the CONNECT tunnel mid-body of the reply "
             "(run already started), idempotency off: not resent", arm_proxy_cut_no_key,
             Expect(False, None, ("reset",), 1, says=(r"reached|may have|not (re)?sent",))),
)
