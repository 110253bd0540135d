"""Where a job's credentials may go: one rule, pure functions, shared by the core engines,
Airflow (operator, sensor, DAG factory; the trigger only polls what they checked) and Dagster.

Credentials are the job's ``auth`` (a connection's, or the spec's own), every ``secret://``
reference in what is sent (request, target, wait URLs; a proxy's own password goes to the
proxy and is not counted) and a literal ``Authorization`` or ``Cookie`` header. They may go
only to

- an origin (scheme, host, port) the spec's author wrote literally: the scheme and authority
  of a URL that holds no template before its path (``https://api.example.com/{{ ds }}`` names
  ``https://api.example.com``; ``https://{{ params.host }}/x`` and ``{{ conf.url }}`` name
  none: their origin is known only after rendering);
- a connection's own origin, for the connection's credentials (its Host);
- an origin on an explicit allow-list (``allowed_origins`` of the spec, of an Airflow
  connection's extra, of the Dagster resource, or of an engine).

Everything else is refused before anything is sent (docs/security.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._secrets import SECRET_RE, find_references

TEMPLATE_MARKS = ("{{", "{%", "{#")
# Fields holding a URL that the job's credentials are sent to, as (section, key).
DESTINATIONS: tuple[tuple[str, str], ...] = (
    ("request", "url"), ("target", "base_url"), ("auth", "token_url"),
    ("wait", "status_url"), ("wait", "cancel_url"), ("wait", "batch_status_url"),
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# What an authority may hold (RFC 3986: unreserved, sub-delims, ':', '@', '[', ']', '%').
# Anything else (a backslash, a space) is read differently by different URL parsers, so a
# URL holding it has no origin trigrun will vouch for.
_AUTHORITY = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@\[\]%]*$")
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie"})
FIX = ("write the URL's scheme, host and port literally in the spec (templates may follow "
       "the host, e.g. https://api.example.com/{{ params.path }}), or list the origin in "
       "allowed_origins")


def is_template(text: str) -> bool:
    return any(mark in text for mark in TEMPLATE_MARKS)


def origin(url: Any) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL, lower case, the default port left
    out; None when ``url`` has none trigrun can vouch for (relative, another scheme, an
    authority with characters that URL parsers read differently)."""
    if not isinstance(url, str):
        return None
    # A secret:// reference in the userinfo (a password) is not part of the origin.
    text = SECRET_RE.sub("x", url.strip())
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in _DEFAULT_PORTS:
        return None
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if not authority or not _AUTHORITY.match(authority):
        return None
    try:
        parts = urlsplit(f"{scheme.lower()}://{authority}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    scheme = scheme.lower()
    shown = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{shown}"


def literal_origin(url: Any) -> str | None:
    """The origin ``url`` names as written, before any rendering: None when a template stands
    in its scheme or authority (or it is not an absolute http(s) URL)."""
    if not isinstance(url, str):
        return None
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if is_template(scheme + "://" + authority):
        return None
    # Jinja emits the text before the first tag as written: the rendered URL starts with it.
    return origin(f"{scheme}://{authority}")


def normalize_allowed(value: str) -> str:
    """An ``allowed_origins`` entry as an origin; ``ValueError`` saying why it is not one."""
    if not isinstance(value, str) or is_template(value):
        raise ValueError(f"{value!r} is not an origin: allowed_origins are written literally "
                         "(no templates), e.g. 'https://api.example.com'")
    text = value.strip().rstrip("/")
    found = origin(text)
    if found is None or text.split("://", 1)[1].strip("/").count("/") or "?" in text \
            or "#" in text or "@" in text:
        raise ValueError(f"{value!r} is not an origin; give scheme, host and (optional) port "
                         "only, e.g. 'https://api.example.com' or 'http://10.0.0.5:8080'")
    return found


def authored_origins(spec: Mapping[str, Any],
                     runtime: Iterable[tuple[str, ...]] = ()) -> dict[str, str | None]:
    """``{field: literal origin or None}`` for each destination URL ``spec`` (a spec dict as
    its author wrote it, before rendering) holds. ``runtime``: spec paths whose values came
    from data at run time (mapped XCom); nothing in them counts as written."""
    paths = list(runtime)
    out: dict[str, str | None] = {}
    for section, key in DESTINATIONS:
        holder = spec.get(section)
        field = f"{section}.{key}"
        if holder is not None and not isinstance(holder, Mapping):
            # The whole section is a template (rendered as a native object from run conf,
            # say): whatever URL it ends up holding, its author did not write it.
            out[field] = None
            continue
        if holder is None or key not in holder:
            continue
        from_data = any(p == () or p == (section,) or p == (section, key) for p in paths)
        out[field] = None if from_data else literal_origin(holder[key])
    return out


def destinations(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(field, url)`` of every URL a (rendered) spec dict sends its credentials to."""
    out = []
    for section, key in DESTINATIONS:
        holder = spec.get(section)
        value = holder.get(key) if isinstance(holder, Mapping) else None
        if isinstance(value, str) and value:
            out.append((f"{section}.{key}", value))
    return out


def _without_proxy(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _without_proxy(v) for k, v in obj.items() if k != "proxy"}
    return obj


def credential_names(spec: Mapping[str, Any]) -> tuple[list[str], bool]:
    """(the ``secret://`` names the spec sends, whether it holds credentials at all)."""
    sent = {k: _without_proxy(spec.get(k)) for k in ("request", "target", "auth", "wait")}
    names = find_references(sent)
    request = spec.get("request")
    headers = request.get("headers") if isinstance(request, Mapping) else None
    literal = isinstance(headers, Mapping) and any(
        str(k).lower() in _CREDENTIAL_HEADERS for k in headers)
    return names, bool(names) or spec.get("auth") is not None or literal


@dataclass(frozen=True)
class Connection:
    """A connection whose credentials are in the spec as ``secret://<prefix>...``: they may go
    to ``origin`` and to ``allowed`` only."""

    name: str
    prefix: str
    origin: str | None
    allowed: frozenset[str] = frozenset()


def refused(spec: Mapping[str, Any], *, who: str,
            authored: Mapping[str, str | None] | None = None,
            allowed: Iterable[str] = (), connection: Connection | None = None) -> list[str]:
    """One message per destination of ``spec`` (rendered, completed, as a dict) that would
    carry credentials to an origin they are not bound to; ``[]`` when all may go.

    ``authored``: ``authored_origins`` of the spec before rendering; a destination field it
    does not list was filled by trigrun's defaults or by the connection (trusted). None: the
    spec was not rendered, every destination is as its author wrote it.
    """
    names, has_credentials = credential_names(spec)
    if not has_credentials:
        return []
    listed = {normalize_allowed(o) for o in allowed}
    for entry in spec.get("allowed_origins") or ():
        listed.add(normalize_allowed(entry))
    own = set(listed)
    if authored is not None:
        own.update(o for o in authored.values() if o)
    conn_names: list[str] = []
    if connection is not None:
        own.update(connection.allowed)
        if connection.origin:
            own.add(connection.origin)
        conn_names = [n for n in names if n.startswith(connection.prefix)]
    own_names = [n for n in names if n not in conn_names]
    own_auth = (spec.get("auth") is not None and not find_references(spec.get("auth"))) or any(
        n in own_names for n in find_references(spec.get("auth")))
    problems = []
    for field, url in destinations(spec):
        where = origin(url)
        trusted = authored is None or field not in authored
        what: list[str] = []
        if conn_names and connection is not None:
            conn_ok = {*connection.allowed, *listed} | (
                {connection.origin} if connection.origin else set())
            if where not in conn_ok:
                what.append(f"the credentials of connection {connection.name!r}")
        if (own_names or own_auth or (not names and has_credentials)) \
                and not (trusted and where is not None) and where not in own:
            what.append("the spec's credentials")
        if not what:
            continue
        shown = where or "a URL whose origin cannot be told"
        known = sorted(own | ({connection.origin} if connection and connection.origin
                              else set()))
        problems.append(
            f"{who}, field {field}: {' and '.join(what)} would be sent to {shown}, which is "
            f"not an origin they are bound to ({', '.join(known) or 'none'}); nothing was "
            f"sent. Fix: {FIX} (on the spec, the Airflow connection's extra or the Dagster "
            "resource)")
    return problems
