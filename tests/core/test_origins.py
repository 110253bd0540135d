"""The origin rule (trigrun._origins), pure: what a URL names literally, what counts as a
credential, and which destinations are refused."""

from __future__ import annotations

import pytest

from trigrun import JobSpec, SpecError
from trigrun._origins import (
    Connection,
    authored_origins,
    literal_origin,
    normalize_allowed,
    origin,
    refused,
)


@pytest.mark.parametrize(("url", "expected"), [
    ("https://API.example.com/x", "https://api.example.com"),
    ("https://api.example.com:443/x", "https://api.example.com"),
    ("http://10.0.0.5:8080", "http://10.0.0.5:8080"),
    ("https://u:secret://pw@host.example/x", "https://host.example"),
    ("http://[::1]:9/x", "http://[::1]:9"),
    ("https://good.example\\@evil.example/", None),  # parsers disagree: no origin
    ("https://a b.example/", None),
    ("/relative", None),
    ("ftp://host/x", None),
])
def test_origin(url: str, expected: str | None) -> None:
    assert origin(url) == expected


@pytest.mark.parametrize(("url", "expected"), [
    ("https://api.example.com/{{ params.path }}", "https://api.example.com"),
    ("https://api.example.com?x={{ ds }}", "https://api.example.com"),
    ("https://{{ params.host }}/x", None),
    ("https://api.example.com{{ params.suffix }}/x", None),
    ("https://api.example.com:{{ params.port }}/x", None),
    ("{{ dag_run.conf['url'] }}", None),
    ("{% if x %}https://a.example{% endif %}/x", None),
    ("https://a{# c #}.example/x", None),
])
def test_literal_origin(url: str, expected: str | None) -> None:
    assert literal_origin(url) == expected


def test_allowed_origins_are_origins_written_literally() -> None:
    assert normalize_allowed("https://API.example.com/") == "https://api.example.com"
    for bad in ("https://api.example.com/path", "{{ params.o }}", "api.example.com",
                "https://u@api.example.com"):
        with pytest.raises(ValueError, match="origin"):
            normalize_allowed(bad)
    with pytest.raises(SpecError, match="allowed_origins"):
        JobSpec.model_validate({"name": "j", "request": {"url": "https://a.example"},
                                "allowed_origins": ["{{ params.o }}"]})


def _spec(url: str, **extra: object) -> dict[str, object]:
    return {"name": "j", "request": {"url": url, **extra}}


def test_what_counts_as_credentials() -> None:
    far = "https://far.example/x"
    authored = {"request.url": None}
    # No credentials: anything may go anywhere.
    assert refused(_spec(far, body={"a": 1}), who="job 'j'", authored=authored) == []
    for creds in ({"headers": {"Authorization": "literal"}},
                  {"headers": {"X-Key": "secret://k"}}, {"body": {"k": "secret://k"}}):
        assert refused(_spec(far, **creds), who="job 'j'", authored=authored)
    spec = {**_spec(far), "auth": {"type": "bearer", "token": "literal"}}
    assert refused(spec, who="job 'j'", authored=authored)
    # A proxy's password goes to the proxy, not to the target.
    assert refused(_spec(far, proxy="http://u:secret://p@proxy:3128"), who="job 'j'",
                   authored=authored) == []


def test_connection_credentials_go_to_the_connection_origin_only() -> None:
    conn = Connection(name="c", prefix="conn/c/", origin="https://c.example")
    spec = {**_spec("https://other.example/x"),
            "auth": {"type": "bearer", "token": "secret://conn/c/password"}}
    # Even a URL the author wrote literally does not carry the connection's token elsewhere.
    (msg,) = refused(spec, who="task 't'", authored=None, connection=conn)
    assert "connection 'c'" in msg
    assert "https://other.example" in msg
    assert refused({**spec, "allowed_origins": ["https://other.example"]}, who="task 't'",
                   authored=None, connection=conn) == []
    assert refused({**spec, "request": {"url": "https://c.example/x"}}, who="task 't'",
                   authored={"request.url": None}, connection=conn) == []


def test_a_section_written_as_a_template_names_no_origin() -> None:
    # `request="{{ dag_run.conf['req'] }}"` rendered as a native object: its URL is not the
    # author's, so the spec's own credentials may not follow it.
    source = {"request": "{{ dag_run.conf['req'] }}", "target": None,
              "auth": {"type": "bearer", "token": "secret://tok"}}
    authored = authored_origins(source)
    assert authored["request.url"] is None
    assert "target.base_url" not in authored
    rendered = {"request": {"url": "https://evil.example/steal"},
                "auth": {"type": "bearer", "token": "secret://tok"}}
    (msg,) = refused(rendered, who="task 't'", authored=authored)
    assert "field request.url" in msg
    assert "https://evil.example" in msg
