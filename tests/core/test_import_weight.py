"""trigrun is weightless where it is not used.

Airflow imports every provider's entry point (ours: ``trigrun.airflow._provider``) while
``airflow.sdk`` loads, in the scheduler, API server, DAG processor, triggerer, every worker and
every CLI call; so that import, and ``import trigrun`` itself, must not load the engine or its
HTTP clients. Each check runs in a fresh interpreter: this test process has long imported them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _modules_after(code: str) -> set[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], env=env, check=True,
                         capture_output=True, text=True, timeout=300).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_import_trigrun_loads_no_engine_and_no_http_client() -> None:
    loaded = _modules_after(f"import trigrun\nassert trigrun.__file__.startswith({str(SRC)!r})")
    assert "trigrun" in loaded
    heavy = {"aiohttp", "httpx", "jinja2", "pydantic", "croniter", "yaml", "trigrun._engine"}
    assert not heavy & loaded, sorted(heavy & loaded)


def test_public_names_resolve_on_first_use() -> None:
    loaded = _modules_after(
        "import trigrun\n"
        "assert 'aiohttp' not in sys.modules\n"
        "from trigrun import AsyncEngine, Engine, TrigRunError\n"
        "assert Engine.__module__ == 'trigrun._engine'\n"
        "assert issubclass(trigrun.RunFailed, TrigRunError)\n"
        "assert sorted(trigrun.__all__) == trigrun.__all__\n"
        "assert set(trigrun.__all__) <= set(dir(trigrun))\n"
        "assert all(getattr(trigrun, n) is not None for n in trigrun.__all__)\n"
        "try:\n    trigrun.NoSuchName\nexcept AttributeError as e:\n"
        "    assert 'NoSuchName' in str(e)\nelse:\n    raise SystemExit('no AttributeError')\n"
    )
    assert {"trigrun._engine", "aiohttp", "httpx"} <= loaded


def test_airflow_provider_discovery_leaves_the_engine_unimported() -> None:
    pytest.importorskip("airflow")
    loaded = _modules_after("import airflow.sdk")
    # Discovery did run our entry point (else this test would prove nothing) ...
    assert "trigrun.airflow._provider" in loaded
    # ... and it pulled in neither the engine nor its async client, nor any trigrun operator.
    assert "trigrun._engine" not in loaded
    assert "aiohttp" not in loaded
    assert not {m for m in loaded if m.startswith("trigrun.") and m not in {
        "trigrun._version", "trigrun.airflow", "trigrun.airflow._provider",
        "trigrun.airflow._versions"}}
