"""Reading jobs files, bounded: depth, node count (aliases expanded) and size are checked
before anything is built, so a hostile file fails fast with a message naming file, job and
field (docs/security.md). pydantic's errors are worded in ``_exceptions``."""

from __future__ import annotations

import gc
import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ._exceptions import (  # noqa: F401  (re-exported: older imports name this module)
    SpecError,
    format_validation_error,
    job_label,
    spec_error,
)
from ._models import JobSpec, static_size
from ._templates import template_problems


def validate_job(obj: Any, *, source: str | None = None, index: int | None = None,
                 show_position: bool = False) -> JobSpec:
    """``JobSpec.model_validate`` with an error that names the source, the job and the field
    (and, with ``show_position``, the job's place in the file: for names used twice)."""
    if isinstance(obj, JobSpec):
        return obj
    job = job_label(obj, index)
    if not isinstance(obj, Mapping):
        where = f"{source}: " if source else ""
        raise SpecError(f"{where}job {job}: expected an object with name, schedule and request, "
                        f"got {type(obj).__name__}")
    position = index + 1 if show_position and index is not None else None
    try:
        spec = JobSpec.model_validate(obj)
    except ValidationError as exc:
        raise spec_error(exc, job=job, source=source, position=position) from None
    # What fire would refuse before sending, seen without a secret or the network.
    where = f"{source}: " if source else ""
    who = f"job {job!r}" + (f" (#{position})" if position is not None else "")
    found = template_problems(spec)
    if spec.request is not None and (size := static_size(spec.request.body)) is not None \
            and size > spec.max_request_bytes:
        found.append(("request.body", f"the body is {size} bytes, over max_request_bytes="
                      f"{spec.max_request_bytes}; make it smaller (pass large data by "
                      "reference, e.g. a storage URL) or raise max_request_bytes"))
    problems = [f"{where}{who}, field {field}: {why}" for field, why in found]
    if problems:
        raise SpecError("\n".join(problems), problems=problems)
    return spec


def parse_jobs(data: Any, *, source: str | None = None, limits: LoadLimits | None = None,
               checked: bool = False) -> list[JobSpec]:
    """Validate one job, a list of jobs, or ``{"jobs": [...]}``; report every problem at once.
    The data is first checked against ``limits`` (``checked``: it was already, by
    ``load_jobs``)."""
    where = f"{source}: " if source else ""
    if not checked:
        check_data(data, source, limits)
    if isinstance(data, Mapping) and "jobs" in data and "name" not in data:
        extra = set(data) - {"jobs"}
        if extra:
            raise SpecError(f"{where}unexpected top-level keys {sorted(extra)}; a jobs file "
                            "holds one job, a list of jobs, or {\"jobs\": [...]} only")
        data = data["jobs"]
    items = [data] if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise SpecError(f"{where}expected a job, a list of jobs or {{\"jobs\": [...]}}, "
                        f"got {type(data).__name__}")
    specs: list[JobSpec] = []
    problems: list[str] = []
    seen: dict[str, int] = {}

    def name_of(item: Any) -> Any:
        return item.name if isinstance(item, JobSpec) else (
            item.get("name") if isinstance(item, Mapping) else None)

    # Jobs sharing a name are told apart by their place in the file, in every message.
    names = [name_of(item) for item in items]
    counts = Counter(n for n in names if isinstance(n, str))
    shared = {n for n, c in counts.items() if c > 1}
    for i, item in enumerate(items):
        # Checked on the raw item, so a duplicate is reported even when the job is also invalid.
        name = names[i]
        if isinstance(name, str) and name in seen:
            problems.append(f"{where}job {name!r} (#{i + 1}), field name: duplicate of job "
                            f"#{seen[name] + 1}; job names must be unique in a file, rename one")
        elif isinstance(name, str):
            seen[name] = i
        try:
            specs.append(validate_job(item, source=source, index=i,
                                      show_position=isinstance(name, str) and name in shared))
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError("\n".join(problems), problems=problems)
    return specs


# libyaml parses a jobs file about four times faster than PyYAML's pure-Python loader, and DAG
# files are parsed every 30 seconds; PyYAML wheels ship it, source builds may not.
_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        if _FAST_LOADER is yaml.SafeLoader:
            raise
    # The pure-Python loader's message quotes the offending line; libyaml's does not.
    return yaml.safe_load(text)


# -- bounds -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadLimits:
    """What a jobs file (or the data given to ``parse_jobs``) may hold, checked before anything
    is built. ``max_nodes`` counts every value, with YAML aliases expanded (a value used
    through ``*alias`` ten times counts ten times). Defaults from the environment:
    ``TRIGRUN_MAX_SPEC_DEPTH``, ``TRIGRUN_MAX_SPEC_NODES``, ``TRIGRUN_MAX_SPEC_BYTES``."""

    max_depth: int = 64
    max_nodes: int = 1_000_000
    max_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_env(cls) -> LoadLimits:
        values: dict[str, int] = {}
        for field, env in (("max_depth", "TRIGRUN_MAX_SPEC_DEPTH"),
                           ("max_nodes", "TRIGRUN_MAX_SPEC_NODES"),
                           ("max_bytes", "TRIGRUN_MAX_SPEC_BYTES")):
            raw = os.environ.get(env, "").strip()
            if raw:
                try:
                    values[field] = int(raw)
                except ValueError:
                    raise SpecError(f"{env}={raw!r} is not a whole number") from None
                if values[field] < 1:
                    raise SpecError(f"{env}={raw!r} must be at least 1")
        return cls(**values)


class _Walk:
    """The bookkeeping shared by the checks: where the reader is (for the message), how deep
    and how many values so far."""

    def __init__(self, source: str | None, limits: LoadLimits) -> None:
        self.source, self.limits = source, limits
        self.nodes = 0
        # One frame per open collection: [is_mapping, current key or index, expecting a key]
        self.stack: list[list[Any]] = []
        self.names: dict[int, str] = {}

    def fail(self, what: str, extra_depth: int = 0) -> SpecError:
        path = [f[1] for f in self.stack]
        job, field = self._where(path)
        where = f"{self.source}: " if self.source else ""
        if what == "deep":
            why = (f"too deep: more than {self.limits.max_depth} levels of nesting (limit: "
                   "TRIGRUN_MAX_SPEC_DEPTH or LoadLimits.max_depth; docs/security.md)")
        else:
            why = (f"too large: more than {self.limits.max_nodes:,} values, YAML aliases "
                   "counted each time they are used (limit: TRIGRUN_MAX_SPEC_NODES or "
                   "LoadLimits.max_nodes; docs/security.md)")
        return SpecError(f"{where}job {job}, field {field}: {why}")

    def _where(self, path: list[Any]) -> tuple[str, str]:
        root_mapping = bool(self.stack) and self.stack[0][0]
        if root_mapping and path and path[0] == "jobs" and len(path) > 1 \
                and isinstance(path[1], int):
            index, rest = path[1], path[2:]
        elif not root_mapping and path and isinstance(path[0], int):
            index, rest = path[0], path[1:]
        else:
            index, rest = -1, path
        name = self.names.get(index)
        job = repr(name) if name else (f"#{index + 1}" if index >= 0 else "<unnamed>")
        field = ""
        for part in rest:
            field += f"[{part}]" if isinstance(part, int) else ("." if field else "") + str(part)
        if len(field) > 100:  # a hostile path: its start says where
            field = f"{field[:80]}... ({len(rest)} levels)"
        return job, field or "(job)"

    def job_depth(self) -> int:
        """The stack depth of a job's own mapping."""
        return 2 if self.stack and self.stack[0][0] and self.stack[0][1] == "jobs" else (
            1 if self.stack and not self.stack[0][0] else 0)

    def count(self, n: int = 1) -> None:
        self.nodes += n
        if self.nodes > self.limits.max_nodes:
            raise self.fail("large")

    def open(self, mapping: bool) -> None:
        if len(self.stack) >= self.limits.max_depth:
            raise self.fail("deep")
        self.stack.append([mapping, None if mapping else 0, True])

    def close(self) -> None:
        self.stack.pop()
        self.done()

    def key_or_value(self) -> bool:
        """True when the value about to be read is a mapping's key."""
        return bool(self.stack) and self.stack[-1][0] and self.stack[-1][2]

    def done(self, scalar: Any = None, was_key: bool = False) -> None:
        """A value ended (``scalar``: its text, when a scalar)."""
        if not self.stack:
            return
        top = self.stack[-1]
        if not top[0]:
            top[1] += 1
        elif was_key:
            top[1], top[2] = scalar, False
        else:
            if top[1] == "name" and isinstance(scalar, str) and len(self.stack) == \
                    self.job_depth() + 1:
                index = self.stack[-2][1] if len(self.stack) > 1 else -1
                self.names[index] = scalar
            top[2] = True


def _check_yaml(text: str, source: str | None, limits: LoadLimits) -> None:
    """Walk the YAML events (libyaml's parser keeps its own stack: no recursion) and refuse
    a document too deep or too large, aliases expanded, before a loader builds anything."""
    walk = _Walk(source, limits)
    # anchor -> (values it stands for, its height)
    anchors: dict[str, tuple[int, int]] = {}
    # per open collection: [anchor, values counted when it opened, height of its contents]
    opened: list[list[Any]] = []
    keys: list[bool] = []
    for event in yaml.parse(text, Loader=_FAST_LOADER):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            keys.append(walk.key_or_value())
            walk.count()
            walk.open(isinstance(event, yaml.MappingStartEvent))
            opened.append([event.anchor, walk.nodes, 0])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, start, below = opened.pop()
            if opened:
                opened[-1][2] = max(opened[-1][2], below + 1)
            if anchor:
                anchors[anchor] = (walk.nodes - start + 1, below + 1)
            walk.stack.pop()
            walk.done(was_key=keys.pop())
        elif isinstance(event, yaml.ScalarEvent):
            is_key = walk.key_or_value()
            walk.count()
            if event.anchor:
                anchors[event.anchor] = (1, 0)
            walk.done(event.value, was_key=is_key)
        elif isinstance(event, yaml.AliasEvent):
            is_key = walk.key_or_value()
            size, height = anchors.get(event.anchor or "", (1, 0))
            if len(walk.stack) + height > limits.max_depth:
                raise walk.fail("deep")
            if opened:
                opened[-1][2] = max(opened[-1][2], height)
            walk.count(size)
            walk.done(was_key=is_key)


def check_data(data: Any, source: str | None = None,
               limits: LoadLimits | None = None) -> None:
    """Refuse data (a loaded file, or dicts given directly) too deep or too large, walking it
    without recursion. A value reached twice (a shared reference, a YAML alias) counts twice;
    a cycle is too deep."""
    walk = _Walk(source, limits or LoadLimits.from_env())
    # (value, its key or index in the collection on top of the stack); _CLOSE ends one
    todo: list[Any] = [(data, None)]
    while todo:
        item = todo.pop()
        if item is _CLOSE:
            walk.stack.pop()
            continue
        value, label = item
        if label is not None:
            walk.stack[-1][1] = label
        walk.count()
        if isinstance(value, Mapping):
            walk.open(True)
            name = value.get("name")
            if isinstance(name, str) and len(walk.stack) == walk.job_depth() + 1:
                walk.names[walk.stack[-2][1] if len(walk.stack) > 1 else -1] = name
            todo.append(_CLOSE)
            todo.extend((v, k) for k, v in reversed(list(value.items())))
        elif isinstance(value, (list, tuple)):
            walk.open(False)
            todo.append(_CLOSE)
            todo.extend((v, i) for i, v in reversed(list(enumerate(value))))


_CLOSE = object()


# Tokens of JSON text, for naming where a document too deep for the json module is.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"\s*:|"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _json_too_deep(text: str, source: str, limits: LoadLimits) -> SpecError:
    """Where JSON text first nests deeper than the limit (the json module gave up on it)."""
    walk = _Walk(source, limits)
    for m in _JSON_TOKEN.finditer(text):
        token = m.group()
        if token in ("{", "["):
            if walk.stack and not walk.stack[-1][0]:
                walk.stack[-1][1] += 1
            if len(walk.stack) >= limits.max_depth:
                return walk.fail("deep")
            walk.stack.append([token == "{", None if token == "{" else -1, True])
        elif token in ("}", "]"):
            if walk.stack:
                walk.stack.pop()
        elif token.endswith(":") and walk.stack and walk.stack[-1][0]:
            walk.stack[-1][1] = json.loads(token[:-1].rstrip())
        elif walk.stack and not walk.stack[-1][0]:
            walk.stack[-1][1] += 1
    return SpecError(f"{source}: too deep: more than {limits.max_depth} levels of nesting "
                     "(limit: TRIGRUN_MAX_SPEC_DEPTH; docs/security.md)")


@contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic garbage collection while a jobs file becomes DAGs or Dagster definitions
    (a context manager, or a decorator: ``@gc_paused()``).

    Building them allocates hundreds of thousands of objects, none of them garbage, and each
    allocation burst sets off collections that scan every object the process holds (Airflow's
    and Dagster's included): a third to a half of the build's time on 1,000 jobs. Cycles made
    meanwhile are collected at the next collection after it. Process-wide, for about a
    millisecond per job."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def read_file(path: str | Path, limits: LoadLimits | None = None) -> Any:
    """The data of a YAML or JSON jobs file, checked against ``limits`` before it is built."""
    p = Path(path)
    limits = limits or LoadLimits.from_env()
    try:
        size = p.stat().st_size
        if size > limits.max_bytes:
            raise SpecError(f"{p}: too large: {size:,} bytes, more than {limits.max_bytes:,} "
                            "(limit: TRIGRUN_MAX_SPEC_BYTES or LoadLimits.max_bytes; "
                            "docs/security.md)")
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{p}: cannot read the jobs file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    is_json = p.suffix.lower() == ".json"
    try:
        if is_json:
            try:
                data = json.loads(text)
            except RecursionError:
                raise _json_too_deep(text, str(p), limits) from None
            check_data(data, str(p), limits)
            return data
        try:
            _check_yaml(text, str(p), limits)
        except yaml.YAMLError:
            if _FAST_LOADER is yaml.SafeLoader:
                raise
            # The pure-Python parser's message quotes the offending line; libyaml's does
            # not. A parser (no loader): it keeps its own stack, whatever the nesting.
            for _ in yaml.parse(text, Loader=yaml.SafeLoader):
                pass
            raise
        return _load_yaml(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{p}: not valid {'JSON' if is_json else 'YAML'}: {exc}") from None
    except SpecError:
        raise
    except ValueError as exc:  # an integer of more than 4,300 digits (int()'s own limit)
        raise SpecError(f"{p}: cannot read the jobs file: {exc}; write such a value as a "
                        "string") from None


def load_jobs(path: str | Path, *, limits: LoadLimits | None = None) -> list[JobSpec]:
    """Load a YAML or JSON jobs file: one job, a list, or ``{"jobs": [...]}``. ``limits``:
    how deep and large the file may be (default ``LoadLimits.from_env()``)."""
    limits = limits or LoadLimits.from_env()
    data = read_file(path, limits)
    if data is None:
        raise SpecError(f"{path}: the file is empty; add at least one job")
    return parse_jobs(data, source=str(path), checked=True)
