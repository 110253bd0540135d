"""``trigrun fire --dry-run``: the request a fire would send, secrets as their references."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from .._flow import idempotency_key, origin_problems
from .._models import AirflowPasswordAuth, BasicAuth, BearerAuth, HeaderAuth, JobSpec
from .._secrets import EnvSecrets, find_references
from .._targets import HttpCall, preset_for
from .._templates import render_spec, template_context
from ._common import INVALID, OK, cli_upstream

# Header names whose literal (non secret://) values are credentials: masked in --dry-run.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key",
                                 "api-key", "x-auth-token"})

def _show_value(name: str, value: str) -> str:
    if "secret://" in value or name.lower() not in _CREDENTIAL_HEADERS:
        return value
    return "*** (a literal in the spec; use a secret:// reference)"


def _auth_header(spec: JobSpec, token_base: str | None) -> tuple[str, str] | None:
    """The header the job's ``auth`` adds at send time, secrets as their references."""
    auth = spec.auth

    def ref(v: str) -> str:
        return v if "secret://" in v else "***"

    if isinstance(auth, BearerAuth):
        return "Authorization", f"Bearer {ref(auth.token)}"
    if isinstance(auth, BasicAuth):
        return "Authorization", f"Basic base64({auth.username}:{ref(auth.password)})"
    if isinstance(auth, HeaderAuth):
        return auth.name, ref(auth.value)
    if isinstance(auth, AirflowPasswordAuth):
        url = auth.token_url or f"{token_base or ''}/auth/token"
        return "Authorization", f"Bearer <JWT from POST {url}, as {auth.username} with " \
            f"password {ref(auth.password)}>"
    return None


def _call_dict(call: HttpCall, auth: tuple[str, str] | None) -> dict[str, Any]:
    headers = {k: _show_value(k, v) for k, v in call.headers.items()}
    if call.json is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    if auth is not None:
        headers[auth[0]] = auth[1]
    body: Any = call.json if call.json is not None else call.content
    return {"method": call.method, "url": call.url, "headers": headers, "body": body}


def dry_run(spec: JobSpec, scheduled: datetime, as_json: bool) -> int:
    rendered = render_spec(spec, template_context(spec, scheduled, None))
    key = idempotency_key(rendered, scheduled) if rendered.idempotency.enabled else None
    preset = preset_for(rendered)
    iso = scheduled.astimezone(timezone.utc).isoformat()
    upstream = cli_upstream() if rendered.link_upstream else None
    call = preset.trigger_call(key, iso, upstream=upstream)
    request = _call_dict(call, _auth_header(rendered, preset.auth_base_url()))
    # The size as the dry run knows it: secret:// references not substituted.
    size = len(json.dumps(call.json, separators=(",", ":")).encode()) if call.json is not None \
        else len(call.content.encode()) if call.content is not None else 0
    too_big = size > rendered.max_request_bytes
    env = EnvSecrets()
    refs = find_references(rendered.model_dump(mode="json",
                                               include={"request", "target", "auth", "wait"}))
    secrets = [{"reference": f"secret://{n}", "env": env.env_name(n),
                "set": env(n) is not None} for n in refs]
    steps: list[str] = []
    if rendered.overlap != "allow" and (active := preset.active_call()) is not None:
        steps.append(f"list active runs (overlap={rendered.overlap}): {active.method} {active.url}")
    if key is not None and (lookup := preset.lookup_call(key)) is not None:
        steps.append(f"look for a run this fire already started: {lookup.method} {lookup.url}")
    refused = (f"the body is {size} bytes, over max_request_bytes="
               f"{rendered.max_request_bytes}: a real fire refuses it and sends nothing"
               if too_big else None)
    # The engine's origin rule, as a real fire applies it (the CLI's engine lists no
    # allowed_origins of its own): a refusal is the real fire's exit code too.
    bound = origin_problems(spec, rendered, frozenset())
    if bound:
        refused = "\n".join([*bound, *([refused] if refused else [])])
    code = INVALID if bound else OK
    if as_json:
        print(json.dumps({"dry_run": True, "job": spec.name, "target": preset.name,
                          "scheduled_time": iso, "idempotency_key": key,
                          "before_sending": steps, "request": request, "secrets": secrets,
                          "refused": refused},
                         indent=2, default=str))
        return code
    print(f"dry run: nothing is sent. Job {spec.name!r}, target {preset.name}, "
          f"scheduled time {iso}")
    if key:
        print(f"idempotency key: {key}")
    for step in steps:
        print(f"first: {step}")
    print(f"{request['method']} {request['url']}")
    for k, v in request["headers"].items():
        print(f"{k}: {v}")
    body = request["body"]
    if body is not None:
        print()
        print(body if isinstance(body, str) else json.dumps(body, indent=2, default=str))
    for s in secrets:
        state = "set" if s["set"] else "NOT SET: a real fire stops here with exit code 3"
        print(f"secret {s['reference']} <- ${s['env']} ({state})")
    if refused:
        for line in refused.splitlines():
            print(f"REFUSED: {line}")
    return code
