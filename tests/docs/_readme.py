"""The README's examples as the tests use them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), re.S)


def first_jobs_file() -> str:
    """The jobs file a reader copies first: the README's first YAML block."""
    return blocks("yaml")[0]


def pointed_at(text: str, base_url: str) -> dict[str, Any]:
    """The README's jobs file with the Airflow job's ``base_url`` (``http://localhost:8080``
    in the README) replaced by ``base_url``: the only change a reader makes."""
    data = yaml.safe_load(text)
    target = data["jobs"][0]["target"]
    assert target["base_url"] == "http://localhost:8080"
    target["base_url"] = base_url
    return dict(data)
