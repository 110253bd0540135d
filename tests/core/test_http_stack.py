"""The engines' senders (httpx for ``Engine``, aiohttp for ``AsyncEngine``) against a raw TCP
server: the safeguards trigrun adds on top of the libraries, on a real socket.

The server is scripted byte for byte, so what the core suite's server never produces
(chunked bodies, 1xx replies, close-delimited bodies, a body that trickles in, a gzip bomb, a
kept-alive connection the server has dropped, huge headers) is exercised.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

import trigrun
from tests.helpers.drive import Driver
from trigrun._flow import Outcome, Send
from trigrun._http import Proxies, TlsContexts
from trigrun._send_aiohttp import AiohttpSender
from trigrun._send_httpx import HttpxSender

# reply bytes, "close" / "hang" / "drop" / "drip", (bytes, "close")
Action = bytes | str | tuple[bytes, str]
SCHEDULED = datetime(2026, 3, 16, 1, 0, tzinfo=timezone.utc)


class RawServer:
    """Replies to each request (read up to its blank line plus Content-Length) with the next
    scripted action; the last one repeats. Counts connections and requests."""

    def __init__(self, *actions: Action, tls: ssl.SSLContext | None = None) -> None:
        self.actions = list(actions)
        self.requests: list[bytes] = []
        self.connections = 0
        self._tls = tls
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    def _next(self) -> Action:
        return self.actions.pop(0) if len(self.actions) > 1 else self.actions[0]

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self._tls is not None:
                conn = self._tls.wrap_socket(conn, server_side=True)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                buf = rest[length:]
                action = self._next()
                if action == "drop":
                    return
                if action == "hang":
                    time.sleep(5)
                    return
                if action == "drip":  # headers, then a byte of body every 0.1 s
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                    for _ in range(1000):
                        time.sleep(0.1)
                        conn.sendall(b"x")
                    return
                if action == "close":
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                if isinstance(action, tuple):  # reply, then close
                    conn.sendall(action[0])
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                assert isinstance(action, bytes)
                conn.sendall(action)
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._sock.close()


def ok(body: bytes = b'{"ok": true}', *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(*pieces: bytes, headers: tuple[str, ...] = ()) -> bytes:
    out = ("\r\n".join(["HTTP/1.1 200 OK", "Transfer-Encoding: chunked", *headers])
           + "\r\n\r\n").encode()
    for p in pieces:
        out += f"{len(p):x};ext=1\r\n".encode() + p + b"\r\n"
    return out + b"0\r\nX-Trailer: t\r\n\r\n"


@pytest.fixture
def raw() -> Iterator[Callable[..., RawServer]]:
    made: list[RawServer] = []

    def make(*actions: Action, tls: ssl.SSLContext | None = None) -> RawServer:
        srv = RawServer(*actions, tls=tls)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.close()


def send(url: str, method: str = "GET", content: bytes | None = None, *, timeout: float = 5.0,
         max_bytes: int = 1 << 20, headers: dict[str, str] | None = None) -> Send:
    return Send(method, url, headers or {"Accept": "application/json"}, content, timeout, True,
                max_bytes)


def sync_sender(pool_size: int = 4) -> HttpxSender:
    return HttpxSender(client=None, pool_size=pool_size, tls=TlsContexts(), proxies=Proxies())


def async_sender(pool_size: int = 4) -> AiohttpSender:
    return AiohttpSender(client=None, pool_size=pool_size, tls=TlsContexts(), proxies=Proxies())


class Client:
    """One of the two senders, driven the same way."""

    def __init__(self, kind: str, pool_size: int = 4) -> None:
        self.kind = kind
        self.pool_size = pool_size

    def run(self, *actions: Send) -> list[Outcome]:
        if self.kind == "sync":
            sync = sync_sender(self.pool_size)
            out = [sync.send(a) for a in actions]
            sync.close()
            return out

        async def go() -> list[Outcome]:
            sender = async_sender(self.pool_size)
            got = [await sender.send(a) for a in actions]
            await sender.aclose()
            return got

        return asyncio.run(go())


@pytest.fixture(params=["async", "sync"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run(kind: str, *actions: Send, pool_size: int = 4, verify: bool | str = True) -> list[Outcome]:
    return Client(kind, pool_size).run(*[replace(a, verify=verify) for a in actions])


def test_kept_alive_connection_is_reused(raw: Callable[..., RawServer], kind: str) -> None:
    srv = raw(ok())
    outs = run(kind, *[send(srv.url + "/a")] * 3)
    assert [o.reply.status_code for o in outs if o.reply] == [200, 200, 200]
    assert srv.connections == 1
    assert srv.requests[0].startswith(b"GET /a HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in srv.requests[0]


def test_chunked_body_with_extensions_and_trailers(raw: Callable[..., RawServer], kind: str) -> None:
    srv = raw(chunked(b'{"a": ', b"1}"))
    out, again = run(kind, send(srv.url), send(srv.url))
    assert out.reply is not None
    assert out.reply.json() == {"a": 1}
    assert again.reply is not None
    assert again.reply.json() == {"a": 1}
    assert srv.connections == 1  # the chunked reply ended cleanly: the connection was kept


def test_connection_close_is_honoured(raw: Callable[..., RawServer], kind: str) -> None:
    srv = raw(ok(b"x", "Connection: close"))
    outs = run(kind, send(srv.url), send(srv.url))
    assert all(o.reply is not None and o.reply.body == b"x" for o in outs)
    assert srv.connections == 2


def test_body_delimited_by_close(raw: Callable[..., RawServer], kind: str) -> None:
    srv = raw((b"HTTP/1.1 200 OK\r\n\r\nall of it", "close"))
    (out,) = run(kind, send(srv.url))
    assert out.reply is not None
    assert out.reply.body == b"all of it"


def test_interim_reply_is_skipped_and_204_has_no_body(raw: Callable[..., RawServer], kind: str) -> None:
    srv = raw(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"real"), b"HTTP/1.1 204 No Content\r\n\r\n",
              ok(b"after"))
    outs = run(kind, *[send(srv.url)] * 3)
    assert [(o.reply.status_code, o.reply.body) for o in outs if o.reply] == [
        (200, b"real"), (204, b""), (200, b"after")]
    assert srv.connections == 1


@pytest.mark.parametrize(("encoding", "encode"), [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send
])
def test_compressed_bodies_are_decoded(raw: Callable[..., RawServer], kind: str, encoding: str,
                                       encode: Callable[[bytes], bytes]) -> None:
    body = b'{"state": "running"}' * 50
    srv = raw(ok(encode(body), f"Content-Encoding: {encoding}"))
    (out,) = run(kind, send(srv.url))
    assert out.reply is not None
    assert out.reply.body == body
    assert b"accept-encoding: gzip, deflate" in srv.requests[0].lower()


def test_gzip_bomb_in_chunks_is_capped(raw: Callable[..., RawServer], kind: str) -> None:
    bomb = gzip.compress(b"0" * 20_000_000)
    srv = raw(chunked(*[bomb[i:i + 4096] for i in range(0, len(bomb), 4096)],
                      headers=("Content-Encoding: gzip",)))
    (out,) = run(kind, send(srv.url, max_bytes=70_000))
    assert out.reply is not None
    assert out.reply.truncated
    assert len(out.reply.body) == 70_000


def test_malformed_replies_are_errors(raw: Callable[..., RawServer], kind: str) -> None:
    srv = raw(b"SPDY/9 200 whatever\r\n\r\n", ok(b"a", "Content-Length: 5"))
    bad_status, bad_length = run(kind, send(srv.url),
                                 send(srv.url))
    for out in (bad_status, bad_length):
        assert out.reply is None
        assert out.error is not None
        assert out.error.startswith("RemoteProtocolError")


def test_dropped_kept_alive_connection_retries_get_but_not_post(
        raw: Callable[..., RawServer], kind: str) -> None:
    # The server replies once, then drops the next request on that connection unanswered.
    srv = raw(ok(b"1"), "drop", ok(b"2"), ok(b"3"), "drop", ok(b"4"))
    first, get, second, post = run(kind, send(srv.url + "/g"), send(srv.url + "/g"),
                                   send(srv.url + "/p", "POST", b"{}"),
                                   send(srv.url + "/p", "POST", b"{}"))
    assert first.reply is not None
    assert first.reply.body == b"1"
    assert get.reply is not None
    assert get.reply.body == b"2"
    assert second.reply is not None
    assert second.reply.body == b"3"
    assert post.reply is None  # a POST is never re-sent behind the flow's back
    assert post.error is not None
    assert "disconnected" in post.error.lower()
    assert [r.split(b" ")[0] for r in srv.requests] == [b"GET", b"GET", b"GET", b"POST", b"POST"]


def test_connection_closed_while_idle_is_not_reused(raw: Callable[..., RawServer],
                                                     kind: str) -> None:
    # The server closes after each reply without saying so; the next POST must not be lost
    # to the dead connection (a POST is never re-sent, so it must not be sent on it at all).
    srv = raw((ok(b"1"), "close"), (ok(b"2"), "close"))

    def settle(a: Send) -> Send:
        time.sleep(0.2)  # the server's FIN arrives while the connection is idle
        return a

    if kind == "sync":
        sync = sync_sender()
        first = sync.send(send(srv.url))
        second = sync.send(settle(send(srv.url, "POST", b"{}")))
        sync.close()
    else:
        async def go() -> tuple[Outcome | None, Outcome | None]:
            sender = async_sender()
            one = await sender.send(send(srv.url))
            await asyncio.sleep(0.2)
            two = await sender.send(send(srv.url, "POST", b"{}"))
            await sender.aclose()
            return one, two

        first, second = asyncio.run(go())
    assert first is not None
    assert first.reply is not None
    assert first.reply.body == b"1"
    assert second is not None
    assert second.reply is not None
    assert second.reply.body == b"2"
    assert srv.connections == 2


def test_pool_bounds_connections(raw: Callable[..., RawServer], kind: str) -> None:
    srv = raw(ok(b"s"))
    outs: list[Outcome | None]
    if kind == "async":
        async def go() -> list[Outcome | None]:
            sender = async_sender(pool_size=3)
            got = await asyncio.gather(*(sender.send(send(srv.url)) for _ in range(40)))
            await sender.aclose()
            return list(got)

        outs = asyncio.run(go())
    else:
        sync = sync_sender(pool_size=3)
        with ThreadPoolExecutor(8) as pool:
            outs = list(pool.map(lambda _: sync.send(send(srv.url)), range(40)))
        sync.close()
    assert [o.error for o in outs if o is None or o.reply is None] == []
    assert srv.connections <= 3


def test_threads_sharing_the_sync_engine_never_lose_a_connection(
        raw: Callable[..., RawServer]) -> None:
    # httpcore's sync pool can close a connection a thread has just started on (EBADF, and
    # one connection over the limit): about one round in fifty hit it before the sender lent
    # each client to one thread at a time.
    for _ in range(40):
        srv = raw(ok(b"s"))
        sync = sync_sender(pool_size=3)
        with ThreadPoolExecutor(8) as pool:
            outs = list(pool.map(lambda _, s=sync, u=srv.url: s.send(send(u)), range(40)))
        sync.close()
        assert [o.error for o in outs if o.reply is None] == []
        assert srv.connections <= 3
        assert len(srv.requests) == 40


def test_a_sync_request_waiting_for_a_busy_pool_times_out_as_a_failed_attempt(
        raw: Callable[..., RawServer]) -> None:
    srv = raw("hang", ok(b"s"))
    sync = sync_sender(pool_size=1)
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(sync.send, send(srv.url, timeout=3.0))
        deadline = time.monotonic() + 5
        while not srv.requests:  # the slow request holds the pool's one connection
            assert time.monotonic() < deadline, "the first request never reached the server"
            time.sleep(0.01)
        waited = sync.send(send(srv.url, timeout=0.5))
        slow.result()
    sync.close()
    assert waited.reply is None
    assert waited.error == "timed out after 0.5s"
    assert srv.connections == 1
    assert len(srv.requests) == 1  # the waiting request never went out


def test_timeout_bounds_the_whole_exchange(raw: Callable[..., RawServer], kind: str) -> None:
    srv = raw("hang")
    t0 = time.monotonic()
    (out,) = run(kind, send(srv.url, timeout=0.3))
    assert out.error == "timed out after 0.3s"
    assert time.monotonic() - t0 < 3.0  # the server hangs for 5 s


def test_refused_connection(raw: Callable[..., RawServer], kind: str) -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    (out,) = run(kind, send(f"http://127.0.0.1:{port}/"))
    assert out.error is not None
    assert out.error.startswith("connection failed")


@pytest.mark.parametrize("where", ["header", "url"])
def test_header_injection_is_refused_before_sending(raw: Callable[..., RawServer], kind: str,
                                                    where: str) -> None:
    srv = raw(ok())
    secret = "s3cr3t-value\r\nX-Evil: 1"
    request: dict[str, object] = {"url": srv.url + "/hook", "headers": {}}
    if where == "header":
        request["headers"] = {"Authorization": "secret://tok"}
    else:
        request["url"] = srv.url + "/hook?k=secret://tok"
    spec = trigrun.JobSpec.model_validate({"name": "inject", "request": request})
    with Driver(kind, secrets={"tok": secret}) as d:
        result = d.fire(spec, scheduled_time=SCHEDULED)
    assert not result.ok
    assert srv.requests == []  # nothing was sent
    assert len(result.attempts) == 1  # not retried: it would fail the same way
    assert result.error is not None
    assert "problem in the job spec" in result.error  # a local problem, not the server's
    assert "RemoteProtocolError" not in result.error
    assert "s3cr3t" not in json.dumps(result.to_log())


def test_framing_headers_from_the_spec_are_dropped(raw: Callable[..., RawServer],
                                                   kind: str) -> None:
    srv = raw(ok())
    spec = trigrun.JobSpec.model_validate({"name": "frame", "request": {
        "url": srv.url + "/hook", "body": {"a": 1},
        "headers": {"Content-Length": "999", "Transfer-Encoding": "chunked"}}})
    with Driver(kind, secrets={}) as d:
        result = d.fire(spec, scheduled_time=SCHEDULED)
    assert result.ok, result.error
    (req,) = srv.requests
    head = req.split(b"\r\n\r\n", 1)[0].lower()
    assert head.count(b"content-length:") == 1
    assert b"content-length: 7" in head  # the library's own framing of {"a":1}
    assert b"transfer-encoding" not in head
    assert req.endswith(b'{"a":1}')


def test_the_url_is_sent_as_written(raw: Callable[..., RawServer], kind: str) -> None:
    srv = raw(ok())
    path = "/a/../b/%2F%7e/c;p=1?x=%2F&y=a+b&z=1/2&w=~"
    (out,) = run(kind, send(srv.url + path))
    assert out.reply is not None
    assert srv.requests[0].startswith(f"GET {path} HTTP/1.1".encode())
    (spaced,) = run(kind, send(srv.url + "/q?v=a b"))
    assert spaced.reply is not None
    assert srv.requests[1].startswith(b"GET /q?v=a%20b HTTP/1.1")


def test_a_dripping_body_is_cut_at_the_timeout(raw: Callable[..., RawServer], kind: str) -> None:
    srv = raw("drip")  # 1000 bytes at 10 a second: 100 s if nobody cuts it
    t0 = time.monotonic()
    (out,) = run(kind, send(srv.url, timeout=1.0))
    took = time.monotonic() - t0
    assert out.reply is None
    assert out.error == "timed out after 1s"
    assert took < 4.0, took  # the deadline counts from the start, not from the last byte


def test_large_reply_headers_are_read(raw: Callable[..., RawServer], kind: str) -> None:
    big = "x" * 60_000
    srv = raw(ok(b"{}", f"Set-Cookie: c={big}", f"X-Big: {big[:30_000]}"))
    (out,) = run(kind, send(srv.url))
    assert out.reply is not None, out.error
    assert out.reply.status_code == 200
    assert len(out.reply.headers["set-cookie"]) == 60_002


def test_cookies_a_target_sets_are_not_sent_back(raw: Callable[..., RawServer],
                                                 kind: str) -> None:
    # Jobs that share a connection setting share a client: a cookie one target set must not
    # ride along with the next request (of this job or another one).
    srv = raw(ok(b"{}", "Set-Cookie: session=abc123; Path=/"), ok())
    first, second = run(kind, send(srv.url + "/a"), send(srv.url + "/b"))
    assert first.reply is not None
    assert second.reply is not None
    assert first.reply.headers["set-cookie"] == "session=abc123; Path=/"
    assert srv.connections == 1  # the same client sent both
    assert b"abc123" not in srv.requests[1]
    assert b"cookie:" not in srv.requests[1].lower()


def test_pool_survives_a_new_event_loop(raw: Callable[..., RawServer]) -> None:
    srv = raw(ok())
    sender = async_sender()
    for _ in range(2):
        (out,) = asyncio.run(_one(sender, send(srv.url)))
        assert out.reply is not None
        assert out.reply.status_code == 200


async def _one(sender: AiohttpSender, a: Send) -> list[Outcome | None]:
    return [await sender.send(a)]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert


def test_tls_uses_the_named_ca_bundle(raw: Callable[..., RawServer], kind: str,
                                      tls_files: tuple[Path, Path]) -> None:
    key, cert = tls_files
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = raw(ok(b"secure"), tls=ctx)
    (good,) = run(kind, send(srv.url), verify=str(cert))
    assert good.reply is not None
    assert good.reply.body == b"secure"
    (bad,) = run(kind, send(srv.url))
    assert bad.reply is None
    assert bad.error is not None
    assert "connection failed" in bad.error
    assert "CERTIFICATE_VERIFY_FAILED" in bad.error
    assert bad.permanent  # the same request would fail the same way: not retried
    assert good.permanent is False


@pytest.mark.parametrize("engine_kind", ["sync", "async"])
@pytest.mark.parametrize("through", ["library", "httpx"])
def test_a_rejected_certificate_ends_a_wait_at_once(raw: Callable[..., RawServer],
                                                    tls_files: tuple[Path, Path],
                                                    engine_kind: str, through: str) -> None:
    import httpx

    key, cert = tls_files
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = raw(ok(b'{"state": "running"}'), tls=ctx)
    spec = trigrun.JobSpec.model_validate({
        "name": "tls wait", "request": {"url": f"{srv.url}/hook"},
        "wait": {"status_url": f"{srv.url}/runs/{{run_id}}", "status_path": "state",
                 "run_id_path": "id", "max_consecutive_poll_errors": 5}})
    if engine_kind == "sync":
        client = httpx.Client() if through == "httpx" else None
        with trigrun.Engine(secrets={}, client=client) as engine:
            run_result = engine.wait(spec, "r1", poll_interval=0.01, timeout=30)
    else:
        async def go() -> trigrun.RunResult:
            aclient = httpx.AsyncClient() if through == "httpx" else None
            async with trigrun.AsyncEngine(secrets={}, client=aclient) as engine:
                return await engine.wait(spec, "r1", poll_interval=0.01, timeout=30)
        run_result = asyncio.run(go())
    assert run_result.state is trigrun.RunState.UNKNOWN
    assert run_result.polls == 1  # not max_consecutive_poll_errors checks with backoff
    assert "CERTIFICATE_VERIFY_FAILED" in run_result.message
    assert "request.verify" in run_result.message


def test_engines_send_through_their_library(raw: Callable[..., RawServer], kind: str) -> None:
    srv = raw(ok(b'{"dag_run_id": "r1", "state": "success"}'))
    spec = trigrun.JobSpec.model_validate({
        "name": "lean", "target": {"type": "airflow", "base_url": srv.url, "dag_id": "d"}})

    async def go() -> trigrun.RunResult:
        async with trigrun.AsyncEngine(secrets={}) as engine:
            return await engine.wait(spec, "r1", poll_interval=0.01, timeout=5)

    if kind == "async":
        result = asyncio.run(go())
    else:
        with trigrun.Engine(secrets={}) as engine:
            result = engine.wait(spec, "r1", poll_interval=0.01, timeout=5)
    assert result.state is trigrun.RunState.SUCCESS
    agent = b"python-httpx/" if kind == "sync" else b"aiohttp/"
    assert agent in srv.requests[0].split(b"\r\n\r\n")[0]


def _bomb(decoded: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    block = b"0" * (1 << 20)
    return b"".join(z.compress(block) for _ in range(decoded >> 20)) + z.flush()


def test_a_gzip_bomb_cannot_fill_memory(raw: Callable[..., RawServer], kind: str) -> None:
    import tracemalloc

    bomb = _bomb(1 << 30)  # 1 GiB once inflated, ~1 MiB on the wire
    srv = raw(ok(bomb, "Content-Encoding: gzip"))
    tracemalloc.start()
    try:
        (out,) = run(kind, send(srv.url, max_bytes=70_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.reply is not None
    assert out.reply.truncated
    assert len(out.reply.body) == 70_000
    print(f"{kind}: peak {peak >> 20} MiB")
    # Bounded by one inflated read, whatever the bomb's size: httpx inflates each 64 KiB read
    # at once (zlib's ratio reaches ~1000:1, and its output buffer doubles as it grows);
    # aiohttp inflates in steps of a fixed size.
    limit = 160 if kind == "sync" else 40
    assert peak < limit << 20, f"peak {peak >> 20} MiB while reading a capped reply"


def test_a_given_client_is_always_used_as_given(caplog: pytest.LogCaptureFixture) -> None:
    import httpx

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"ok": True})

    # A spec asking for its own CA bundle, client certificate and proxy used to make the
    # engine build a client of its own and drop the caller's.
    spec = trigrun.JobSpec.model_validate({"name": "given", "request": {
        "url": "https://hook.example.com/x", "verify": "/nonexistent/ca.pem",
        "cert": "/nonexistent/client.pem", "proxy": "http://proxy.example.com:3128"}})
    with caplog.at_level("WARNING", logger="trigrun"), \
            trigrun.Engine(secrets={}, client=httpx.Client(
                transport=httpx.MockTransport(handler))) as engine:
        result = engine.fire(spec, scheduled_time=SCHEDULED)

    async def go() -> trigrun.TriggerResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as aclient, \
                trigrun.AsyncEngine(secrets={}, client=aclient) as aengine:
            return await aengine.fire(spec, scheduled_time=SCHEDULED)

    aresult = asyncio.run(go())
    assert result.ok, result.error
    assert aresult.ok, aresult.error
    assert seen == ["https://hook.example.com/x"] * 2
    assert "left to that client" in caplog.text


def test_a_given_aiohttp_session_is_used(raw: Callable[..., RawServer]) -> None:
    import aiohttp

    srv = raw(ok())
    started: list[str] = []

    async def on_start(session: object, ctx: object, params: aiohttp.TraceRequestStartParams) -> None:
        started.append(str(params.url))

    async def go() -> trigrun.TriggerResult:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(on_start)
        async with aiohttp.ClientSession(trace_configs=[trace]) as session, \
                trigrun.AsyncEngine(secrets={}, client=session) as engine:
            result = await engine.fire(trigrun.JobSpec.model_validate(
                {"name": "session", "request": {"url": srv.url + "/hook"}}),
                scheduled_time=SCHEDULED)
            assert not session.closed  # the caller's session is the caller's to close
            return result

    result = asyncio.run(go())
    assert result.ok, result.error
    assert started == [srv.url + "/hook"]
