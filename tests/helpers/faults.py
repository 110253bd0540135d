"""Fault injection on real sockets: a ``LocalServer`` that misbehaves on purpose.

``FaultServer`` is a ``LocalServer`` (same scripting: ``on(method, path, *replies)``, the last
reply repeats, handlers allowed, every request recorded) that also serves ``Fault`` replies:

- ``Fault(reset="before_status")``: TCP reset (RST) before a single byte of the reply;
- ``Fault(reset="mid_body")``: status line, headers (``Content-Length`` of the whole body) and
  half the body, then a reset;
- ``Fault(trickle=0.1)``: a 200 whose body never ends: one byte every 0.1 s until the client
  hangs up (or ``trickle_for`` seconds pass);
- any ``Reply`` field as usual (``delay`` holds the headers back; ``drop`` closes cleanly).

``lost_reply(handler, fault)`` runs a target's handler for its side effects (the run is
started) and answers with the fault instead: the classic "did my request get through?" case.

``FaultServer(tls=make_tls(dir))`` serves HTTPS with a freshly generated self-signed
certificate (``TLSFiles.cert`` is also the CA bundle that trusts it); handshakes the client
refused are counted in ``tls_failures``.

``RunTarget`` is a webhook-style target that starts one run per ``Idempotency-Key`` (a repeat
gets ``409`` naming the run) and serves scripted run states: it is the ground truth for "no
duplicate trigger". ``ChaosTarget`` adds deterministic 503s (before or after the work) for load
tests. ``ExpiringAirflow`` is ``FakeAirflow`` whose tokens the server can expire mid-wait.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import socket
import ssl
import struct
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .fakes import FakeAirflow
from .httpserver import Handler, LocalServer, Recorded, Reply

__all__ = ["ChaosTarget", "ExpiringAirflow", "Fault", "FaultServer", "RunTarget", "TLSFiles",
           "lost_reply", "make_tls"]


@dataclass
class Fault(Reply):
    """A ``Reply`` that can also reset the connection or trickle its body forever."""

    reset: Literal["before_status", "mid_body"] | None = None
    trickle: float | None = None  # seconds between the bytes of a body that never ends
    trickle_for: float = 30.0  # the server stops trickling after this long regardless


def lost_reply(handler: Handler, fault: Reply) -> Handler:
    """The target does the work (``handler`` runs), but the client gets ``fault`` instead."""

    def run(req: Recorded) -> Reply:
        handler(req)
        return fault

    return run


@dataclass(frozen=True)
class TLSFiles:
    cert: Path  # PEM certificate; also the CA bundle that trusts it (self-signed)
    key: Path

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def make_tls(directory: Path, host: str = "127.0.0.1") -> TLSFiles:
    """A fresh self-signed certificate for ``host`` (as IP and DNS name), valid for a day."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = _dt.datetime.now(_dt.timezone.utc)
    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        sans.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        sans.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(directory / "cert.pem", directory / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files


def _rst(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), not a FIN: the client sees ECONNRESET."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.close()


class FaultServer(LocalServer):
    """A ``LocalServer`` that also serves ``Fault`` replies, optionally over TLS.

    ``backlog`` is raised from socketserver's 5 so a burst of a hundred connections is
    accepted at once (no SYN retransmits skewing timings in load tests).
    """

    def __init__(self, *, tls: TLSFiles | None = None, backlog: int = 512) -> None:
        self.tls = tls
        self.tls_failures = 0
        self.resets = 0
        super().__init__()
        self._httpd.socket.listen(backlog)
        if tls is not None:
            # The handshake happens in the connection's own thread (``setup``), so a client
            # that refuses the certificate never blocks the accept loop.
            self._httpd.socket = tls.context().wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False)
            self.url = f"https://127.0.0.1:{self.port}"

    def _handler_class(self) -> type[Any]:
        base = super()._handler_class()
        server = self

        class FaultHandler(base):  # type: ignore[misc, valid-type]
            def setup(self) -> None:
                if server.tls is not None:
                    try:
                        self.request.do_handshake()
                    except (ssl.SSLError, OSError):
                        with server._lock:
                            server.tls_failures += 1
                        raise
                super().setup()

            def _write(self, reply: Reply) -> None:
                if not isinstance(reply, Fault) or (reply.reset is None and reply.trickle is None):
                    super()._write(reply)
                    return
                if reply.delay:
                    time.sleep(reply.delay)
                self.close_connection = True
                if reply.reset == "before_status":
                    self._reset()
                    return
                if reply.reset == "mid_body":
                    payload = reply.payload()
                    self._head(reply, len(payload))
                    self.wfile.write(payload[: max(1, len(payload) // 2)])
                    self.wfile.flush()
                    time.sleep(0.05)  # let the client read the head before the reset
                    self._reset()
                    return
                assert reply.trickle is not None
                self._head(reply, 10 ** 9)
                self.wfile.write(reply.payload())
                self.wfile.flush()
                deadline = time.monotonic() + reply.trickle_for
                while time.monotonic() < deadline:
                    time.sleep(reply.trickle)
                    self.wfile.write(b" ")
                    self.wfile.flush()

            def _head(self, reply: Reply, length: int) -> None:
                headers = {"Content-Type": "application/json" if reply.json is not None
                           else "text/plain; charset=utf-8", **reply.headers}
                self.send_response(reply.status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.flush()

            def _reset(self) -> None:
                with server._lock:
                    server.resets += 1
                _rst(self.connection)

            def finish(self) -> None:
                # After a reset the socket is gone: nothing is left to flush.
                with suppress(OSError, ValueError):
                    super().finish()

        return FaultHandler


# -- targets ------------------------------------------------------------------------------------


@dataclass
class Run:
    run_id: str
    key: str | None
    job: str | None
    states: list[str]
    reads: int = 0


@dataclass
class KeyLog:
    """What the target answered to every request carrying one idempotency key, in order."""

    statuses: list[int] = field(default_factory=list)
    run_id: str | None = None


class RunTarget:
    """A webhook that starts one run per ``Idempotency-Key`` and reports its state.

    ``POST {path}`` -> ``200 {"run_id", "status"}`` for a new key, ``409 {"error", "run_id"}``
    for a key it has seen (the IETF Idempotency-Key draft's answer, naming the run). A request
    without a key always starts a run. ``GET /runs/{run_id}`` -> ``{"run_id", "status"}`` with
    the run's scripted ``states`` (the last repeats). ``echo`` puts the request's
    ``Authorization`` header into every reply, as a careless API might.
    """

    def __init__(self, server: LocalServer, path: str = "/trigger", *,
                 states: list[str] | None = None, echo: bool = True) -> None:
        self.server = server
        self.path = path
        self.states = states or ["running", "success"]
        self.echo = echo
        self.runs: list[Run] = []
        self.by_key: dict[str, KeyLog] = {}
        self._lock = threading.Lock()
        server.on("POST", path, self.trigger)
        server.on("GET", "/runs/{run_id}", self.status)

    @property
    def url(self) -> str:
        return self.server.url + self.path

    def status_url(self) -> str:
        return self.server.url + "/runs/{run_id}"

    def _echo(self, req: Recorded, body: dict[str, Any]) -> dict[str, Any]:
        if self.echo:
            body["you_sent"] = req.headers.get("authorization")
        return body

    def trigger(self, req: Recorded) -> Reply:
        reply, _ = self.handle_trigger(req)
        return reply

    def handle_trigger(self, req: Recorded) -> tuple[Reply, Run | None]:
        key = req.headers.get("idempotency-key")
        data = req.json() if req.body.startswith(b"{") else None
        job = data.get("job") if isinstance(data, dict) else None
        with self._lock:
            log = self.by_key.setdefault(key, KeyLog()) if key else None
            if log is not None and log.run_id is not None:
                log.statuses.append(409)
                return Reply(409, json=self._echo(req, {
                    "error": "a request with this Idempotency-Key was already received",
                    "run_id": log.run_id})), None
            run = Run(f"run-{len(self.runs) + 1}", key, job, list(self.states))
            self.runs.append(run)
            if log is not None:
                log.run_id = run.run_id
                log.statuses.append(200)
        return Reply(200, json=self._echo(req, {"run_id": run.run_id, "status": "queued"})), run

    def status(self, req: Recorded) -> Reply:
        with self._lock:
            run = next((r for r in self.runs if r.run_id == req.params["run_id"]), None)
            if run is None:
                return Reply(404, json={"error": "no such run"})
            state = run.states[min(run.reads, len(run.states) - 1)]
            run.reads += 1
        return Reply(200, json=self._echo(req, {"run_id": run.run_id, "status": state}))

    def runs_for(self, job: str) -> list[Run]:
        with self._lock:
            return [r for r in self.runs if r.job == job]

    def note(self, key: str | None, status: int) -> None:
        """Record an answer a fault gave in the target's name (for ``KeyLog``)."""
        if key:
            with self._lock:
                self.by_key.setdefault(key, KeyLog()).statuses.append(status)


class ChaosTarget(RunTarget):
    """``RunTarget`` behind a flaky proxy: a deterministic share of trigger requests get 503.

    Which ones is a hash of (idempotency key, attempt number), so a run is reproducible. Half
    of the injected 503s come before the target saw the request, half after it started the
    run (the proxy lost the reply): the retry then gets 409 and must adopt that run. Only the
    first ``max_faults`` attempts of a key can fail, so every fire can succeed.
    """

    def __init__(self, server: LocalServer, path: str = "/trigger", *, rate: float = 0.10,
                 max_faults: int = 3, seed: str = "trigrun") -> None:
        super().__init__(server, path, echo=False)
        self.rate = rate
        self.max_faults = max_faults
        self.seed = seed
        self.injected = {"before": 0, "after": 0}
        self._seen: dict[str, int] = {}

    def _roll(self, key: str, attempt: int) -> float:
        digest = hashlib.sha256(f"{self.seed}|{key}|{attempt}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2 ** 64

    def trigger(self, req: Recorded) -> Reply:
        key = req.headers.get("idempotency-key") or ""
        with self._lock:
            attempt = self._seen[key] = self._seen.get(key, 0) + 1
        roll = self._roll(key, attempt)
        if attempt <= self.max_faults and roll < self.rate:
            busy = Reply(503, body="<html><body>503 Service Unavailable</body></html>",
                         headers={"Content-Type": "text/html"})
            if roll < self.rate / 2:
                with self._lock:
                    self.injected["before"] += 1
                self.note(key, 503)
                return busy
            self.handle_trigger(req)  # the run starts; the proxy loses the answer
            with self._lock:
                self.injected["after"] += 1
                self.by_key[key].statuses[-1] = 503
            return busy
        reply, _ = self.handle_trigger(req)
        return reply


class ExpiringAirflow(FakeAirflow):
    """``FakeAirflow`` whose server side can expire every token issued so far.

    ``expire_on_read=n``: the ``n``-th authorized read of a DAG run expires the tokens in use
    just before it is answered, so that read gets ``401`` - a JWT that expires mid-wait (or a
    server clock ahead of the client's). ``expired`` counts the 401s it caused.
    """

    def __init__(self, server: LocalServer, *, expire_on_read: int, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self.expire_on_read = expire_on_read
        self.reads = 0
        self.expired = 0

    def _get(self, req: Recorded) -> Reply:
        auth = req.headers.get("authorization", "")
        with self._lock:
            if auth.startswith("Bearer ") and auth[7:] in self.valid_tokens:
                self.reads += 1
                if self.reads == self.expire_on_read:
                    self.valid_tokens.clear()  # the base class now answers 401
                    self.expired += 1
        return super()._get(req)
