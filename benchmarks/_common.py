"""Shared helpers: the status server process, child processes, CPU/RSS readings, percentiles."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def rss_bytes() -> int:
    """Current resident set size (not the peak)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


class StatusServer:
    """The status server (``benchmarks._server``, or ``module``) in its own process."""

    def __init__(self, module: str = "benchmarks._server") -> None:
        self.proc = subprocess.Popen([PY, "-m", module], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=child_env())
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the status server did not start")
        ports = json.loads(line)
        self.port: int = ports["port"]
        self.control_port: int = ports["control"]
        self.url = f"http://127.0.0.1:{self.port}"

    def _get(self, path: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=60)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def reset(self, polls: int = 4, interval: float | None = None) -> None:
        self._get(f"/reset?polls={polls}" + (f"&interval={interval}" if interval else ""))

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/stats")
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> StatusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Bytecode for every child process, kept between runs: an installed package has its .pyc
# files, so imports (and process start-ups) are timed as users get them even where the
# environment sets PYTHONDONTWRITEBYTECODE.
PYCACHE = Path(tempfile.gettempdir()) / "trigrun-bench-pycache"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    # Keep Airflow quiet and offline in child processes (no DB, no example DAGs).
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    env.update(extra)
    return env


def run_child(module: str, args: Sequence[str], *, timeout: float,
              env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh process; its last stdout line is JSON."""
    proc = subprocess.run([PY, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env or child_env())
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or "").strip().splitlines()[-15:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except ValueError:
        return {"error": f"no JSON result: {lines[-1][:200]}"}
    return result


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    versions: dict[str, str] = {}
    from importlib import metadata

    for dist in ("trigrun", "httpx", "httpcore", "aiohttp", "apache-airflow-core",
                 "apache-airflow-providers-http", "dag-factory", "dagster", "pydantic"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem,
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "versions": versions,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    """INFO logging to /dev/null, as a triggerer logs: every contender pays its own log calls.

    Like Airflow's logging config, the ``httpx`` logger is at WARNING ("too chatty at info")."""
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    root = logging.getLogger()
    sink = open(os.devnull, "w")  # noqa: SIM115
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
        sink.close()


class ResultOut:
    """Send this process's stdout (fd 1) to /dev/null and keep the real one for the result.

    Airflow's structlog writes straight to stdout; a contender's log lines cost it their
    formatting either way, but must not cost a pipe to the parent nor mix with the result.
    """

    def __init__(self) -> None:
        sys.stdout.flush()
        self._real = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def write(self, line: str) -> None:
        sys.stdout.flush()
        os.write(self._real, (line + "\n").encode())


class PeakRss:
    """The peak resident memory of this process while the waits run, sampled every 0.25 s
    on the event loop (``await start()``, then ``await stop()``)."""

    def __init__(self) -> None:
        import gc

        gc.collect()
        self.base = rss_bytes()
        self.peak = self.base
        self._stop: Any = None
        self._task: Any = None

    async def _sample(self) -> None:
        import asyncio
        import contextlib

        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.25)

    def start(self) -> None:
        import asyncio

        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(self._sample())

    async def stop(self) -> None:
        self._stop.set()
        await self._task
