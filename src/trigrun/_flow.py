"""The engine's logic as generators, shared by the sync and async engines.

A flow yields actions (``Send``, ``Sleep``, ``Resolve``) and receives their outcomes; the
engines only perform the I/O. So every decision here is testable without a network or a clock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

from ._exceptions import SecretNotFound, SpecError, TrigRunError
from ._http import CERT_HINT
from ._models import AirflowPasswordAuth, BasicAuth, BearerAuth, HeaderAuth, JobSpec, _Connects
from ._origins import authored_origins, refused
from ._results import Attempt, RunResult, RunState, TriggerResult
from ._retry import next_delay, parse_retry_after, poll_error_delay
from ._secrets import REDACTED_RECORD, SECRET_RE, Redactor, find_references, substitute
from ._targets import HttpCall, HttpReply, Preset, PresetError, RunRef, RunStatus, preset_for
from ._templates import needs_render, render_spec, template_context
from ._upstream import Upstream

logger = logging.getLogger("trigrun")


@dataclass(frozen=True)
class Send:
    method: str
    url: str
    headers: Mapping[str, str]
    content: bytes | None
    timeout: float
    verify: bool | str
    max_bytes: int
    cert: str | tuple[str, str] | None = None
    # Resolved: may hold credentials. Never logged; engines key their clients on it.
    proxy: str | None = field(default=None, repr=False)
    trust_env: bool = True
    # The job's cap on a server's Retry-After (0: the job ignores Retry-After). The async
    # engine's per-origin pause honours it: such a job neither pauses the origin nor waits.
    retry_after_cap: float = 300.0


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Resolve:
    names: tuple[str, ...]
    # False: a value the engine resolved in the last few seconds will do (status polls of
    # thousands of waits on one engine); True: ask the resolvers now (a fire).
    fresh: bool = True


@dataclass(frozen=True)
class Outcome:
    reply: HttpReply | None
    error: str | None
    duration_ms: float
    note: str | None = None  # why a redirect was not followed
    # The same request would fail the same way (a certificate that fails verification, a
    # header the spec cannot send); ``hint`` says what to fix.
    permanent: bool = False
    hint: str | None = None
    # The request cannot have reached the target (the connection, the proxy's tunnel or the
    # TLS handshake failed, or nothing was sent): resending it can never start a second run.
    unsent: bool = False


SPEC_HINT = ("nothing was sent: this is a problem in the job spec (or in a secret's value), "
             "not on the server")
LOCAL_HINT = ("nothing was sent: this is a problem in the job spec (or in a secret's value), "
              "not on the server; remove the CR/LF or control character")
_FRAMING = frozenset({"content-length", "transfer-encoding"})


def connection_settings(spec: JobSpec) -> _Connects | None:
    """The model holding the job's verify / cert / proxy / trust_env: the raw request, or the
    short-form target; None for defaults."""
    if spec.request is not None:
        return spec.request
    return spec.target if isinstance(spec.target, _Connects) else None


def _proxy_url(proxy: str, secrets: Mapping[str, str]) -> str:
    """The proxy URL with its references resolved. A reference that is the whole URL gives the
    URL; one inside it (a password) is percent-encoded, so '@', '/' or '%' in it stay part of
    the credential."""
    if SECRET_RE.fullmatch(proxy):
        return str(substitute(proxy, secrets))
    return str(substitute(proxy, {k: quote(v, safe="") for k, v in secrets.items()}))


# Checked on every send (a poll included), so regexes rather than loops over characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CRLF = re.compile(r"[\r\n\x00]")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _unsendable(url: str, headers: Mapping[str, str], proxy: str | None) -> str | None:
    """Why the request cannot be sent as the spec wrote it (a header injection), or None.

    Checked on the final values, secrets substituted: a secret's value can hold a newline."""
    if _CONTROL.search(url):
        return "the URL holds a control character (CR, LF or another)"
    for name, value in headers.items():
        if not _TOKEN.match(name):
            return f"header name {name[:40]!r} is not a valid HTTP header name"
        if _CRLF.search(value):
            return f"the value of header {name!r} holds a CR, LF or NUL character"
    if proxy is not None:
        if _CONTROL.search(proxy):
            return "the proxy URL holds a control character (CR, LF or another)"
        p = urlsplit(proxy)
        if p.scheme not in ("http", "https") or not p.hostname:
            return "the proxy URL is not an http(s) URL, e.g. http://proxy.example.com:3128"
    return None


@dataclass(eq=False, slots=True)
class PollRun:
    """One status check of a wait. The sync engine runs ``flows.poll(run_id)``; the async engine
    may answer it from a batched request of the wait's poll group. Either way the answer is
    what ``poll`` returns: a RunStatus, or the Outcome of a failed check.

    ``interval`` is the wait's poll interval (a listing group reads once per interval).
    ``after``: the check is for that many seconds from now (the wait's sleep until its next
    check): an engine sleeps first, a poll group puts it straight into the flush due then,
    with no timer of its own. A group that answers from a listing sets ``read_at``, the
    monotonic time the listing was read: the wait counts its next interval from there, so it
    stays on the group's phase."""

    flows: JobFlows
    run_id: str
    interval: float = 0.0
    after: float = 0.0
    read_at: float | None = None
    started: float | None = None  # when an engine sent this check on its own (after ``after``)


@dataclass(frozen=True, slots=True)
class BatchPage:
    """One page of a batched status reply: the runs it shows, and the listing's size when the
    reply says it (``Preset.batch_total``)."""

    found: dict[str, RunStatus]
    total: int | None = None


Action = Send | Sleep | Resolve | PollRun
Flow = Generator[Action, Any, Any]


@dataclass(frozen=True)
class Event:
    """Progress reported to ``on_event`` callbacks (and the ``trigrun`` logger). Redacted."""

    kind: str  # attempt, retry, adopt, skip, delay, refused, poll, poll_error, cancel, token
    job: str
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)


_END_STATES = frozenset(s.value for s in RunState if s.terminal)


def is_quiet_poll(event: Event) -> bool:
    """A poll event that only repeats what the log already says: the run's state has not
    changed, or it is the end state, which the caller logs with the outcome. A triggerer or a
    Dagster op waiting an hour at a 5 s interval would otherwise log 720 lines per run."""
    return event.kind == "poll" and (not event.data.get("new_state", True)
                                     or event.data.get("state") in _END_STATES)


@dataclass
class _Token:
    value: str = field(repr=False)  # a bearer credential: never in a repr
    expires_at: float = 0.0


@dataclass
class EngineState:
    """What an engine shares across fires: clocks, randomness, token cache, redaction."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    random: Callable[[], float] = random.random
    on_event: Callable[[Event], None] | None = None
    on_secret: Callable[[str], None] | None = None
    redactor: Redactor = field(default_factory=Redactor)
    tokens: dict[tuple[str, str], _Token] = field(default_factory=dict)
    read_limit: int = 1 << 20
    # False when ``on_event`` writes the events to a log of its own (an Airflow task log, a
    # Dagster event log) that also receives the ``trigrun`` logger: one line per event there.
    log_events: bool = True
    # Origins the engine's owner lets every job's credentials go to (``allowed_origins``).
    allowed_origins: frozenset[str] = frozenset()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), tz=timezone.utc)

    def emit_poll(self, job: str, message: str, state: str, poll: int, new_state: bool) -> None:
        """``emit("poll", ...)`` for a message already redacted: its data are a state name, a
        count and a flag, nothing to redact."""
        log = self.log_events and logger.isEnabledFor(logging.DEBUG)
        if log:
            logger.log(logging.DEBUG, "%s: %s", job, message, extra=REDACTED_RECORD)
        if self.on_event is not None:
            self.on_event(Event("poll", job, message,
                                {"state": state, "poll": poll, "new_state": new_state}))

    def emit(self, kind: str, job: str, message: str, **data: Any) -> None:
        # A triggerer polls thousands of runs: a line per poll is DEBUG, the rest is INFO.
        level = logging.DEBUG if kind == "poll" else logging.INFO
        log = self.log_events and logger.isEnabledFor(level)
        if not log and self.on_event is None:
            return
        message = self.redactor.text(message)
        if log:
            logger.log(level, "%s: %s", job, message, extra=REDACTED_RECORD)
        if self.on_event is not None:
            self.on_event(Event(kind, job, message, self.redactor.obj(data)))


def idempotency_key(spec: JobSpec, scheduled: datetime) -> str:
    """Stable for one scheduled fire: the job name and the scheduled time, nothing else."""
    if spec.idempotency.key:
        return spec.idempotency.key
    utc = scheduled.astimezone(timezone.utc)
    # Microseconds are kept when present: Airflow 3 manual runs have no logical date, and two
    # started in the same second are two fires. Schedule ticks have none, so their key is short.
    micro = f".{utc.microsecond:06d}" if utc.microsecond else ""
    stamp = utc.strftime("%Y-%m-%dT%H:%M:%S") + micro + "+00:00"
    digest = hashlib.sha256(f"{spec.name}\n{stamp}".encode()).hexdigest()[:12]
    return f"trigrun__{stamp}__{digest}"


def _origin(url: str) -> tuple[str, str]:
    p = urlsplit(url)
    return p.scheme, p.netloc.lower()


def _jwt_expiry(token: str) -> float | None:
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        exp = json.loads(base64.urlsafe_b64decode(payload)).get("exp")
        return float(exp) if exp is not None else None
    except (IndexError, ValueError, AttributeError):
        return None


# The secret names a spec uses, by spec: a wait asks on every poll, and thousands of waits on
# one engine may share a spec. The entry holds the spec, so its id cannot be reused meanwhile.
_REFS: dict[int, tuple[JobSpec, tuple[str, ...]]] = {}
_REFS_MAX = 1024


def spec_references(spec: JobSpec) -> tuple[str, ...]:
    """Every ``secret://`` name the job's request, target, auth and wait use (cached)."""
    hit = _REFS.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    refs = tuple(find_references(spec.model_dump(mode="json",
                                                 include={"request", "target", "auth", "wait"})))
    if len(_REFS) >= _REFS_MAX:
        _REFS.clear()
    _REFS[id(spec)] = (spec, refs)
    return refs


_UNSET: Any = object()


class JobFlows:
    """The flows for one (rendered) spec: fire, wait, poll, cancel."""

    def __init__(self, spec: JobSpec, state: EngineState, *, key: str | None = None) -> None:
        self.spec = spec
        self.state = state
        self.preset: Preset = preset_for(spec)
        self.secrets: dict[str, str] = {}
        self.key = key
        self._status_calls: dict[str, HttpCall] = {}
        self._scope: Any = _UNSET
        # The last body built (``_content``): the fire sizes its trigger body, then sends it.
        self._body: tuple[HttpCall, bytes | None, bool] | None = None

    def batch_scope(self) -> Any:
        """The poll group this job's waits join (None: poll per run): the preset's batch scope
        plus everything that makes one request stand for another, the auth (as written, with
        its references: one engine resolves a reference to one value) and the connection
        settings. Computed once per JobFlows."""
        if self._scope is _UNSET:
            scope = self.preset.batch_key() if self.spec.wait.batch else None
            if scope is not None:
                conn = connection_settings(self.spec)
                auth = self.spec.auth.model_dump_json() if self.spec.auth is not None else None
                req = self.spec.request
                scope = (scope, auth, tuple(sorted(self.preset.base_headers().items())),
                         (conn.verify, conn.cert, conn.proxy, conn.trust_env) if conn else None,
                         req.timeout_seconds if req else None, self.spec.max_response_bytes)
            self._scope = scope
        return self._scope

    # -- secrets and sending ---------------------------------------------------------------
    def _resolve(self, refs: tuple[str, ...], fresh: bool = True) -> Flow:
        names = [n for n in refs if n not in self.secrets]
        if not names:
            return None
        values = yield Resolve(tuple(names), fresh)
        for name in names:
            value = values.get(name)
            if value is None:
                raise SecretNotFound(f"secret://{name}", job=self.spec.name,
                                     hint="Set it in the engine's secrets (for EnvSecrets: the "
                                     f"environment variable TRIGRUN_SECRET_{_env(name)}).")
            self.secrets[name] = value
            self.state.redactor.add(value)
            if self.state.on_secret is not None:
                self.state.on_secret(value)
        return None

    def resolve_all(self, fresh: bool = True) -> Flow:
        """Resolve every reference the job uses before anything is sent."""
        yield from self._resolve(spec_references(self.spec), fresh)

    def _auth_headers(self, call: HttpCall) -> Flow:
        auth = self.spec.auth
        if auth is None:
            return {}
        def s(value: str) -> str:
            return str(substitute(value, self.secrets))

        if isinstance(auth, BearerAuth):
            return {"Authorization": f"Bearer {s(auth.token)}"}
        if isinstance(auth, BasicAuth):
            raw = f"{s(auth.username)}:{s(auth.password)}".encode()
            value = base64.b64encode(raw).decode()
            self.state.redactor.add(value)
            return {"Authorization": f"Basic {value}"}
        if isinstance(auth, HeaderAuth):
            return {auth.name: s(auth.value)}
        assert isinstance(auth, AirflowPasswordAuth)
        token = yield from self._airflow_token()
        return {"Authorization": f"Bearer {token}"}

    def _token_url(self) -> str:
        auth = self.spec.auth
        assert isinstance(auth, AirflowPasswordAuth)
        if auth.token_url:
            return auth.token_url
        base = self.preset.auth_base_url()
        assert base is not None
        return f"{base}/auth/token"

    def _airflow_token(self, *, refresh: bool = False) -> Flow:
        auth = self.spec.auth
        assert isinstance(auth, AirflowPasswordAuth)
        url = self._token_url()
        username = substitute(auth.username, self.secrets)
        cache_key = (url, username)
        cached = self.state.tokens.get(cache_key)
        if cached is not None and not refresh and cached.expires_at > self.state.wall() + 30:
            return cached.value
        body = {"username": username, "password": substitute(auth.password, self.secrets)}
        call = HttpCall("POST", url, {"Content-Type": "application/json"}, json=body,
                        purpose="token")
        policy, started = self.spec.retry_policy, self.state.monotonic()
        for number in range(1, policy.max_attempts + 1):
            outcome = yield from self._send_raw(call)
            reply = outcome.reply
            if reply is not None and reply.status_code in (200, 201):
                break
            what = outcome.error or f"HTTP {reply.status_code if reply else '?'}"
            # A token request starts nothing: a network error or a 5xx / 429 is retried by the
            # job's retry policy, as the trigger request would be.
            delay, _ = next_delay(
                policy, attempt=number, status_code=reply.status_code if reply else None,
                network_error=reply is None, retry_after=parse_retry_after(
                    reply.headers.get("retry-after"), self.state.now()) if reply else None,
                elapsed=self.state.monotonic() - started, random_value=self.state.random())
            if outcome.permanent or delay is None:
                fix = ("check auth.username / auth.password" if reply is not None
                       and reply.status_code in (400, 401, 403)
                       else outcome.hint or "the Airflow API server did not answer it")
                raise _AuthError(f"getting an Airflow token from {url} failed: {what} "
                                 f"({number} attempt{'s' if number > 1 else ''}); {fix}")
            self.state.emit("retry", self.spec.name, f"token request: retrying in {delay:.1f}s "
                            f"after {what}", delay_seconds=delay)
            yield Sleep(delay)
        assert reply is not None
        data = reply.json()
        token = data.get("access_token") if isinstance(data, dict) else None
        if not token:
            raise _AuthError(f"the reply of {url} has no access_token")
        self.state.redactor.add(token)
        if self.state.on_secret is not None:
            self.state.on_secret(token)
        exp = _jwt_expiry(token) or (self.state.wall() + 300)
        self.state.tokens[cache_key] = _Token(token, exp)
        self.state.emit("token", self.spec.name, f"got an Airflow API token from {url}")
        return token

    def _content(self, call: HttpCall) -> tuple[bytes | None, bool]:
        """The body as sent (secrets substituted), and whether it holds a secret."""
        last = self._body
        if last is not None and last[0] is call:
            # The secrets a flow resolved never change for it: the same call, the same body.
            return last[1], last[2]
        if call.json is not None:
            raw = json.dumps(call.json, separators=(",", ":"))
            body_has_secret = "secret://" in raw
            if body_has_secret:
                raw = json.dumps(substitute(call.json, self.secrets), separators=(",", ":"))
            content: bytes | None = raw.encode()
        elif call.content is not None:
            content, body_has_secret = (substitute(call.content, self.secrets).encode(),
                                        "secret://" in call.content)
        else:
            return None, False
        self._body = (call, content, body_has_secret)
        return content, body_has_secret

    def _send_raw(self, call: HttpCall, extra_headers: Mapping[str, str] | None = None) -> Flow:
        req = self.spec.request
        secrets = self.secrets
        headers: dict[str, str] = {}
        secret_headers: set[str] = set()
        typed = framed = False
        for k, v in call.headers.items():
            if "secret://" in v:
                secret_headers.add(k)
                v = substitute(v, secrets)
            headers[k] = v
        if extra_headers:
            headers.update(extra_headers)
            secret_headers.update(extra_headers)
        for k in headers:
            lower = k.lower()
            typed = typed or lower == "content-type"
            framed = framed or lower in _FRAMING
        url = substitute(call.url, secrets)
        content, body_has_secret = self._content(call)
        if call.json is not None and not typed:
            headers["Content-Type"] = "application/json"
        timeout = req.timeout_seconds if req else 30.0
        follow = req.follow_redirects if req else False
        conn = connection_settings(self.spec)
        verify = conn.verify if conn else True
        cert = conn.cert if conn else None
        trust_env = conn.trust_env if conn else True
        proxy = _proxy_url(conn.proxy, self.secrets) if conn and conn.proxy else None
        if framed:
            # The library frames the body; a second framing from the spec would be smuggling.
            headers = {k: v for k, v in headers.items() if k.lower() not in _FRAMING}
        # Read past the cap, so a secret straddling it is whole when redacted (see ``keep``).
        limit = max(self.state.read_limit, self.spec.max_response_bytes + 4096)
        policy = self.spec.retry_policy
        ra_cap = policy.max_retry_after_seconds if policy.respect_retry_after else 0.0
        for _hop in range(10):
            bad = _unsendable(url, headers, proxy)
            if bad is not None:
                return Outcome(None, self.state.redactor.text(bad), 0.0, permanent=True,
                               hint=LOCAL_HINT)
            outcome: Outcome = yield Send(call.method, url, headers, content, timeout, verify,
                                          limit, cert, proxy, trust_env, ra_cap)
            reply = outcome.reply
            if outcome.error is not None:
                outcome = replace(outcome, error=self.state.redactor.text(outcome.error))
            if not (follow and reply is not None and reply.status_code in (301, 302, 303, 307, 308)
                    and reply.headers.get("location")):
                return outcome
            from urllib.parse import urljoin

            new_url = urljoin(url, reply.headers["location"])
            keeps_body = reply.status_code != 303 and content is not None
            if _origin(new_url) != _origin(url):
                if keeps_body and body_has_secret:
                    return replace(outcome, note=(
                        f"the redirect to another origin ({self._safe_url(new_url)}) was not "
                        "followed: the request body holds secrets"))
                # Never forward credentials to another origin.
                headers = {k: v for k, v in headers.items()
                           if k not in secret_headers
                           and k.lower() not in ("authorization", "cookie", "proxy-authorization")}
            # As httpx and browsers do: 303 turns any method but HEAD into GET, 301 and 302
            # turn a POST into a GET; 307 and 308 keep the method and the body.
            if (reply.status_code == 303 and call.method != "HEAD") or (
                    reply.status_code in (301, 302) and call.method == "POST"):
                call = replace(call, method="GET")
                content = None
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            url = new_url
        return outcome

    def send(self, call: HttpCall) -> Flow:
        """Send with the job's auth; an Airflow JWT is refreshed once on 401."""
        auth_headers = yield from self._auth_headers(call)
        outcome: Outcome = yield from self._send_raw(call, auth_headers)
        if (isinstance(self.spec.auth, AirflowPasswordAuth) and outcome.reply is not None
                and outcome.reply.status_code == 401):
            token = yield from self._airflow_token(refresh=True)
            outcome = yield from self._send_raw(call, {"Authorization": f"Bearer {token}"})
        return outcome

    # -- replies -----------------------------------------------------------------------------
    def keep(self, reply: HttpReply | None) -> tuple[Any, bool]:
        """The response as kept in results: parsed JSON or text, capped, redacted."""
        if reply is None:
            return None, False
        cap = self.spec.max_response_bytes
        truncated = reply.truncated or len(reply.body) > cap
        red = self.state.redactor
        if not truncated:
            data = reply.json()
            if data is None:
                data = reply.text
            # Parsed JSON holds no secret that its text does not show, unless escaped (a
            # backslash) or in UTF-16/32 (NULs in the UTF-8 reading): when the text is clean,
            # the walk through every value is skipped.
            text = reply.text
            if "\\" in text or "\x00" in text or not red.is_clean(text):
                data = red.obj(data)
            return data, False
        # Redact before cutting: a secret across the cut would otherwise leave its first half.
        text = red.text(reply.body.decode("utf-8", errors="ignore"))
        kept = text.encode()[:cap].decode("utf-8", errors="ignore")
        return kept + f"... [truncated: kept {cap} bytes]", True

    # -- fire ----------------------------------------------------------------------------------
    def fire(self, scheduled: datetime, started: float, *,
             upstream: Upstream | None = None) -> Flow:
        spec, st, preset = self.spec, self.state, self.preset
        key = self.key if spec.idempotency.enabled else None
        iso = scheduled.astimezone(timezone.utc).isoformat()
        attempts: list[Attempt] = []
        if not spec.link_upstream:
            upstream = None

        def result(ok: bool, reply: HttpReply | None = None, ref: RunRef | None = None,
                   **kw: Any) -> TriggerResult:
            response, truncated = self.keep(reply)
            return TriggerResult(
                job=spec.name, ok=ok, status_code=reply.status_code if reply else None,
                duration_ms=(st.monotonic() - started) * 1000, attempts=tuple(attempts),
                response=response, run_id=ref.run_id if ref else None,
                run_url=ref.run_url if ref else None, idempotency_key=key,
                scheduled_time=iso, target=preset.name, truncated=truncated, spec=spec, **kw)

        try:
            yield from self.resolve_all()
            if upstream is not None:
                # Not secrets, but everything that leaves trigrun passes the redactor (once
                # the job's own secrets are known to it).
                red = st.redactor
                upstream = replace(upstream, name=red.text(upstream.name),
                                   url=red.text(upstream.url) if upstream.url else None)
            call = preset.trigger_call(key, iso, upstream=upstream)
            # Before any request (an overlap listing, a key lookup): nothing goes out for a
            # job whose trigger could never be sent.
            too_big = self._oversize(call)
            if too_big is not None:
                st.emit("refused", spec.name, too_big)
                return result(False, error=st.redactor.text(too_big))
            if spec.overlap != "allow":
                active = yield from self._active()
                if active:
                    run = active[0]
                    if spec.overlap == "skip":
                        st.emit("skip", spec.name, f"skipped: run {run.run_id} is still active")
                        return result(True, skipped=True,
                                      reason=f"overlap: run {run.run_id} of this job is still active")
                    st.emit("adopt", spec.name, f"reusing active run {run.run_id}")
                    return result(True, ref=run, adopted=True,
                                  reason=f"overlap: reused active run {run.run_id}")
            if key is not None:
                found = yield from self._lookup(key)
                if found is not None:
                    st.emit("adopt", spec.name, f"already triggered: adopting run {found.run_id}")
                    return result(True, ref=found, adopted=True,
                                  reason="idempotency: this fire already started a run")
            delay_before = 0.0
            pending_before = False  # an earlier attempt got "still being processed"
            for number in range(1, spec.retry_policy.max_attempts + 1):
                t0 = st.monotonic()
                outcome: Outcome = yield from self.send(call)
                reply = outcome.reply
                attempts.append(Attempt(number, reply.status_code if reply else None,
                                        outcome.error, outcome.duration_ms, delay_before * 1000))
                what = f"HTTP {reply.status_code}" if reply else outcome.error
                st.emit("attempt", spec.name, f"attempt {number}: {what} "
                        f"({outcome.duration_ms:.0f} ms)", attempt=number,
                        status_code=reply.status_code if reply else None)
                if reply is not None and reply.ok:
                    try:
                        ref = preset.parse_trigger(reply)
                    except PresetError as exc:
                        return result(False, reply, error=st.redactor.text(
                            f"job {spec.name!r}: the trigger request to {self._safe_url(call.url)} got "
                            f"HTTP {reply.status_code}, but {_unreadable(reply, exc)}"))
                    if key is not None and (preset.is_replay(reply) or pending_before):
                        # A 2xx after "still being processed" is the earlier request's answer.
                        st.emit("adopt", spec.name, "the target replayed an earlier answer "
                                "for this idempotency key")
                        return result(True, reply, ref, adopted=True, reason="idempotency: "
                                      "the target replayed its answer to an earlier request")
                    return result(True, reply, ref)
                pending = (reply is not None and key is not None and preset.is_conflict(reply)
                           and preset.conflict_pending(reply))
                pending_before = pending_before or pending
                if reply is not None and key is not None and preset.is_conflict(reply) \
                        and not pending:
                    if preset.adopt_call(key) is None:
                        ref = preset.parse_conflict(reply)
                        st.emit("adopt", spec.name, f"HTTP {reply.status_code}: this fire was "
                                "already received" + (f" (run {ref.run_id})" if ref else ""))
                        return result(True, reply, ref, adopted=True, reason="idempotency: the "
                                      "target already received this fire")
                    found = yield from self._adopt(key)
                    if found is not None:
                        st.emit("adopt", spec.name, f"409: adopting run {found.run_id}")
                        return result(True, reply, found, adopted=True,
                                      reason="idempotency: the target already has this run")
                retry_after = parse_retry_after(reply.headers.get("retry-after"), st.now()) \
                    if reply is not None else None
                delay, why = next_delay(
                    spec.retry_policy, attempt=number,
                    status_code=reply.status_code if reply else None,
                    network_error=reply is None, retry_after=retry_after,
                    elapsed=st.monotonic() - started, random_value=st.random(),
                    retryable=True if pending else None)
                if pending and delay is None and not preset.conflict_needs_run():
                    # The target holds a request with this key; the job tracks no run.
                    assert reply is not None
                    st.emit("adopt", spec.name, f"HTTP {reply.status_code}: this fire was "
                            "already received")
                    return result(True, reply, None, adopted=True, reason="idempotency: the "
                                  "target already received this fire (it answered "
                                  f"{reply.status_code} to every attempt)")
                if outcome.permanent:
                    delay, why = None, outcome.hint or CERT_HINT
                elif delay is not None and reply is None and key is None and not outcome.unsent:
                    # The request may have reached the target (the reply was lost, cut or
                    # late): without an idempotency key a resend could start a second run.
                    delay, why = None, (
                        "not retried: the request may have reached the target, and without an "
                        "idempotency key (idempotency.enabled is false) a resend could start a "
                        "second run; check the target for a new run before firing again")
                if delay is None:
                    err = (f"job {spec.name!r}: trigger request to {self._safe_url(call.url)} "
                           f"failed: {what}; {why}")
                    if reply is not None and 300 <= reply.status_code < 400:
                        err += "; " + _redirect_hint(spec, reply, outcome.note, self._safe_url)
                    if pending:
                        err += ("; the target answered that a request with this idempotency "
                                "key is still being processed and no reply named its run: "
                                "check the target for the run before firing again")
                    elif reply is not None and key is not None and preset.is_conflict(reply):
                        hint = preset.conflict_hint(reply)
                        if hint:
                            err += "; " + hint
                    return result(False, reply, error=st.redactor.text(err))
                st.emit("retry", spec.name, f"retrying in {delay:.1f}s after {what}",
                        delay_seconds=delay)
                yield Sleep(delay)
                delay_before = delay
                del t0
                if key is not None:
                    # The last attempt may have reached the target (a timeout, a 5xx from a
                    # proxy): ask before sending again.
                    found = yield from self._lookup(key)
                    if found is not None:
                        st.emit("adopt", spec.name, f"found run {found.run_id} from an earlier attempt")
                        return result(True, ref=found, adopted=True,
                                      reason="idempotency: an earlier attempt started the run")
            raise AssertionError("unreachable")  # pragma: no cover
        except (PresetError, _AuthError) as exc:
            err = st.redactor.text(f"job {spec.name!r}: {exc}")
            return result(False, error=err)

    def _oversize(self, call: HttpCall) -> str | None:
        """Why the trigger's body is refused (over ``max_request_bytes``), or None."""
        limit = self.spec.max_request_bytes
        content, _ = self._content(call)
        if content is None or len(content) <= limit:
            return None
        return (f"job {self.spec.name!r}: the trigger request body is {len(content)} bytes, "
                f"over max_request_bytes={limit}; {SPEC_HINT}: make the body smaller (pass "
                "large data by reference, e.g. a storage URL) or raise max_request_bytes")

    def _safe_url(self, url: str) -> str:
        return self.state.redactor.text(url.split("?", 1)[0])

    def _lookup(self, key: str) -> Flow:
        call = self.preset.lookup_call(key)
        if call is None:
            return None
        outcome: Outcome = yield from self.send(call)
        if outcome.reply is None or not outcome.reply.ok:
            return None  # a failed lookup must not block the trigger itself
        return self.preset.parse_lookup(outcome.reply, key)

    def _adopt(self, key: str) -> Flow:
        call = self.preset.adopt_call(key)
        if call is None:
            return None
        outcome: Outcome = yield from self.send(call)
        if outcome.reply is None or not outcome.reply.ok:
            return None
        status = self.preset.parse_status(outcome.reply)
        ref = self.preset.parse_trigger(outcome.reply)
        return ref if ref is not None else RunRef(key, None, status.state)

    def _active(self) -> Flow:
        call = self.preset.active_call()
        if call is None:
            return []
        outcome: Outcome = yield from self.send(call)
        if outcome.reply is None or not outcome.reply.ok:
            what = outcome.error or f"HTTP {outcome.reply.status_code if outcome.reply else '?'}"
            raise PresetError(f"could not list active runs for overlap={self.spec.overlap!r}: {what}")
        return self.preset.parse_active(outcome.reply)

    # -- poll / wait / cancel ------------------------------------------------------------------
    def poll(self, run_id: str) -> Flow:
        """One status check: a RunStatus, or an Outcome when the check itself failed."""
        yield from self.resolve_all(fresh=False)
        call = self._status_calls.get(run_id)
        if call is None:  # the same call on every poll of a wait: build it once
            if len(self._status_calls) > 64:
                self._status_calls.clear()
            call = self._status_calls[run_id] = self.preset.status_call(run_id)
        outcome: Outcome = yield from self.send(call)
        reply = outcome.reply
        if reply is None or not reply.ok:
            return outcome
        try:
            status = self.preset.parse_status(reply)
        except PresetError as exc:
            status = RunStatus(RunState.UNKNOWN, None, str(exc))
        return self._redacted(status)

    def _redacted(self, status: RunStatus) -> RunStatus:
        # The raw status ends up in RunResult, metadata and logs: a server may echo a secret.
        red = self.state.redactor
        return replace(status, raw=red.obj(status.raw), message=red.text(status.message),
                       run_url=red.text(status.run_url) if status.run_url else None)

    def poll_batch(self, run_ids: list[str], call: HttpCall) -> Flow:
        """One batched status request (``call``, from ``preset.batch_calls``) with this job's
        auth: a ``BatchPage`` of the runs the reply shows, or the Outcome of a failed
        request. A 2xx reply that cannot be read is a failed check (transient, counted by each
        wait like a 5xx), not an end: a proxy's error page must not end a thousand waits."""
        yield from self.resolve_all(fresh=False)
        outcome: Outcome = yield from self.send(call)
        reply = outcome.reply
        if reply is None or not reply.ok:
            return outcome
        if reply.truncated:
            return None  # larger than the read limit: the group reads these runs on their own
        try:
            found = self.preset.parse_batch(reply, run_ids)
            total = self.preset.batch_total(reply) if self.preset.batch_lists else None
        except PresetError as exc:
            return Outcome(None, self.state.redactor.text(
                f"the batched status reply could not be read ({exc})"), outcome.duration_ms)
        # Runs in one state share one RunStatus (the presets cache them): redact each once.
        done: dict[int, RunStatus] = {}
        for rid, status in found.items():
            red = done.get(id(status))
            if red is None:
                red = done[id(status)] = self._redacted(status)
            found[rid] = red
        return BatchPage(found, total)

    def _result(self, run_id: str, run_url: str | None, polls: int, started: float,
                state: RunState, message: str, raw: Any = None) -> RunResult:
        # A method, not a closure in ``wait``: thousands of suspended waits would each keep
        # the closure's cells alive.
        st = self.state
        return RunResult(job=self.spec.name, state=state, run_id=run_id, run_url=run_url,
                         message=st.redactor.text(message), polls=polls,
                         duration_ms=(st.monotonic() - started) * 1000, raw_status=raw,
                         target=self.preset.name)

    def wait(self, run_id: str, run_url: str | None, *, poll_interval: float | None = None,
             timeout: float | None = None, end_time: float | None = None,
             cancel_on_timeout: bool | None = None) -> Flow:
        spec, st = self.spec, self.state
        interval = poll_interval or spec.wait.poll_interval_seconds
        if end_time is None:
            end_time = st.wall() + (timeout if timeout is not None else spec.wait.timeout_seconds)
        cancel = spec.wait.cancel_on_timeout if cancel_on_timeout is None else cancel_on_timeout
        started = st.monotonic()
        polls = 0
        errors = 0
        last_state: RunState | None = None
        run_url = run_url or self.preset.run_url(run_id)
        check = PollRun(self, run_id, interval)  # one action object for every poll of this wait
        said_for: RunStatus | None = None
        said_gen = -1
        said = ""

        while True:
            if not self.preset.supports_wait:
                return self._result(run_id, run_url, polls, started, RunState.UNKNOWN, f"job {spec.name!r}: target {self.preset.name!r} "
                            "cannot report run state; set wait.status_url")
            polled_at = st.monotonic() + check.after
            got = yield check
            check.after = 0.0
            grouped = check.read_at is not None
            if check.read_at is not None:
                polled_at, check.read_at = check.read_at, None
            elif check.started is not None:  # the sleep may have woken a little late
                polled_at, check.started = check.started, None
            polls += 1
            if isinstance(got, RunStatus):
                errors = 0
                run_url = got.run_url or run_url
                # new_state: the integrations log state changes, not every poll. A run in one
                # state answers with one shared status object: its line is redacted once.
                if got is not said_for or st.redactor.generation != said_gen:
                    said_for, said_gen = got, st.redactor.generation
                    said = st.redactor.text(f"run {run_id}: {got.state.value} ({got.raw})")
                st.emit_poll(spec.name, said, got.state.value, polls, got.state is not last_state)
                last_state = got.state
                if got.state is RunState.UNKNOWN:
                    return self._result(run_id, run_url, polls, started, RunState.UNKNOWN, f"job {spec.name!r}, run {run_id}: {got.message}",
                                got.raw)
                if got.state.terminal:
                    return self._result(run_id, run_url, polls, started, got.state, f"job {spec.name!r}: run {run_id} ended "
                                f"{got.state.value} ({got.message})", got.raw)
                # Polls start every `interval` (the check's own time is not added to it),
                # but a slow check still leaves at least half an interval of quiet. A listing
                # group's answer needs no such floor: its next flush is a whole interval on,
                # so a check slowed by the others in its flush still makes the next one.
                elapsed = st.monotonic() - polled_at
                delay = max(0.0 if grouped else interval / 2, interval - elapsed)
            else:
                reply = got.reply
                what = got.error or f"HTTP {reply.status_code if reply else '?'}"
                transient = (reply is None and not got.permanent) or (
                    reply is not None and (reply.status_code in (408, 425, 429) or reply.status_code >= 500))
                if not transient:
                    hint = " (is the run id right?)" if reply is not None and reply.status_code == 404 else ""
                    if got.permanent:
                        hint = f"; {got.hint or CERT_HINT}"
                    return self._result(run_id, run_url, polls, started, RunState.UNKNOWN, f"job {spec.name!r}: status check for run "
                                f"{run_id} failed: {what}{hint}")
                errors += 1
                st.emit("poll_error", spec.name, f"status check failed ({what}); "
                        f"{errors} in a row", errors=errors)
                if errors >= spec.wait.max_consecutive_poll_errors:
                    return self._result(run_id, run_url, polls, started, RunState.UNKNOWN, f"job {spec.name!r}: status check for run "
                                f"{run_id} failed {errors} times in a row, last: {what}")
                delay = poll_error_delay(interval, errors)
                ra = parse_retry_after(reply.headers.get("retry-after"), st.now()) if reply else None
                if ra is not None:
                    delay = max(delay, min(ra, spec.retry_policy.max_retry_after_seconds))
            remaining = end_time - st.wall()
            if remaining <= 0:
                message = f"job {spec.name!r}: run {run_id} still going after the wait's deadline"
                if cancel:
                    cancelled, ended = yield from self._cancel(run_id)
                    if ended is not None:  # it ended in the meantime: that is the outcome
                        return self._result(run_id, ended.run_url or run_url, polls + 1, started,
                                            ended.state, f"job {spec.name!r}: run {run_id} ended "
                                            f"{ended.state.value} ({ended.message})", ended.raw)
                    message += "; cancel requested" if cancelled else "; cancel failed"
                return self._result(run_id, run_url, polls, started, RunState.TIMEOUT, message)
            check.after = min(delay, remaining)  # the sleep until the next check

    def cancel(self, run_id: str) -> Flow:
        """True when the target took the cancel. Never changes a run that already ended."""
        ok, _ = yield from self._cancel(run_id)
        return ok

    def _cancel(self, run_id: str) -> Flow:
        """(cancelled, the run's end state when it had already ended, else None)."""
        call = self.preset.cancel_call(run_id)
        if call is None:
            self.state.emit("cancel", self.spec.name, f"target {self.preset.name!r} cannot cancel runs")
            return False, None
        yield from self.resolve_all()
        if self.preset.cancel_checks_status:
            # The target's cancel call would overwrite an ended run (Airflow's PATCH marks even
            # a succeeded run failed): only a run seen to be going gets one.
            got = yield from self.poll(run_id)
            if not isinstance(got, RunStatus) or got.state.terminal or got.state is RunState.UNKNOWN:
                ended = got if isinstance(got, RunStatus) and got.state.terminal else None
                why = (f"it already ended {ended.state.value}" if ended is not None
                       else "its state could not be read")
                self.state.emit("cancel", self.spec.name, f"cancel of run {run_id}: not sent, {why}")
                return False, ended
        outcome: Outcome = yield from self.send(call)
        ok = outcome.reply is not None and self.preset.cancel_accepted(outcome.reply)
        self.state.emit("cancel", self.spec.name, f"cancel of run {run_id}: "
                        f"{'requested' if ok else outcome.error or outcome.reply.status_code if outcome.reply else '?'}")
        return ok, None


def _unreadable(reply: HttpReply, exc: Exception) -> str:
    """Why a successful trigger reply could not be read, in the user's terms."""
    if reply.truncated:
        return (f"the reply was larger than the read limit ({len(reply.body)} bytes kept) "
                f"and was cut, so it could not be read ({exc})")
    if reply.json() is None:
        ctype = reply.headers.get("content-type", "no Content-Type")
        return f"the reply is not JSON ({ctype}), so it could not be read ({exc})"
    return str(exc)


class _AuthError(TrigRunError):
    pass


def _redirect_hint(spec: JobSpec, reply: HttpReply, note: str | None,
                   safe: Callable[[str], str]) -> str:
    if note:
        return note
    location = reply.headers.get("location")
    if not location:
        return "the redirect has no Location header"
    if spec.request is not None and spec.request.follow_redirects:
        return "too many redirects"
    return (f"the redirect to {safe(location)} was not followed; set request.follow_redirects: "
            "true to follow redirects (credentials are never sent to another origin)")


def _env(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


_TEMPLATED: dict[int, tuple[JobSpec, bool]] = {}


def _needs_render(spec: JobSpec) -> bool:
    """Whether the spec holds templates, cached per spec (a fire asks every time)."""
    hit = _TEMPLATED.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    found = needs_render(spec)
    if len(_TEMPLATED) >= _REFS_MAX:
        _TEMPLATED.clear()
    _TEMPLATED[id(spec)] = (spec, found)
    return found


_AUTHORED: dict[int, tuple[JobSpec, dict[str, str | None]]] = {}


def _authored(spec: JobSpec) -> dict[str, str | None]:
    """The origins a spec names literally, by field, cached per spec (as ``_needs_render``)."""
    hit = _AUTHORED.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    found = authored_origins(spec.model_dump(mode="json", include={"request", "target",
                                                                    "auth", "wait"}))
    if len(_AUTHORED) >= _REFS_MAX:
        _AUTHORED.clear()
    _AUTHORED[id(spec)] = (spec, found)
    return found


def origin_problems(spec: JobSpec, rendered: JobSpec, allowed: frozenset[str]) -> list[str]:
    """Why ``rendered`` (``spec`` rendered) may not be sent: credentials go only where the
    spec names literally, or to listed origins. ``[]`` when it may (a spec without
    templates sends only where its author wrote)."""
    if not _needs_render(spec):
        return []
    return refused(rendered.model_dump(mode="json", exclude_unset=True),
                   who=f"job {spec.name!r}", authored=_authored(spec), allowed=allowed)


def prepare(spec: JobSpec, state: EngineState, *, scheduled: datetime | None,
            context: Mapping[str, Any] | None, render: bool) -> tuple[JobSpec, datetime, str | None]:
    """Validate the context, render templates: (rendered spec, scheduled time, skip reason)."""
    now = state.now()
    scheduled = scheduled or now
    if scheduled.tzinfo is None:
        raise SpecError(f"job {spec.name!r}: scheduled_time {scheduled.isoformat()} has no time "
                        "zone; pass an aware datetime")
    rendered = spec
    if render and _needs_render(spec):
        rendered = render_spec(spec, template_context(spec, scheduled, context))
        bound = origin_problems(spec, rendered, state.allowed_origins)
        if bound:
            raise SpecError("\n".join(bound), problems=bound)
    skip = None
    if spec.ttl_seconds is not None:
        # As the seed's TTL: a delayed fire's TTL starts when its delay ends.
        delay = spec.delay_seconds
        late = (now - scheduled).total_seconds() - delay
        if late > spec.ttl_seconds:
            since = (f"its delayed time (scheduled {scheduled.isoformat()} + "
                     f"delay_seconds={delay:g})" if delay else
                     f"its scheduled time {scheduled.isoformat()}")
            skip = (f"ttl: fired {late:.0f}s after {since}, more than "
                    f"ttl_seconds={spec.ttl_seconds:g}")
    return rendered, scheduled, skip


def delay_left(spec: JobSpec, scheduled: datetime, now: float) -> float:
    """Seconds until the job's fire is due: its scheduled time plus ``delay_seconds``
    (0 when that has passed, or the job has no delay). ``now``: the wall clock."""
    if not spec.delay_seconds:
        return 0.0
    return max(0.0, scheduled.timestamp() + spec.delay_seconds - now)
