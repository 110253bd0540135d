"""Error wording lives with the errors (``_exceptions``): the models no longer import the
loader, and the auth tags the wording skips are the models' own."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import trigrun._exceptions as exceptions
from trigrun._models import AirflowPasswordAuth, BasicAuth, BearerAuth, HeaderAuth

SRC = Path(exceptions.__file__).parent


def _imports(module: str) -> set[str]:
    tree = ast.parse((SRC / f"{module}.py").read_text())
    return {node.module or "" for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1}


def test_no_import_circle_between_models_and_loader() -> None:
    assert "_loader" not in _imports("_models")
    assert "_loader" not in _imports("_exceptions")
    assert "_models" not in _imports("_exceptions")


def test_the_tagged_auth_fields_are_the_models_tags() -> None:
    tags = {tag for model in (BearerAuth, BasicAuth, HeaderAuth, AirflowPasswordAuth)
            for tag in get_args(model.model_fields["type"].annotation)}
    assert exceptions._TAGGED_FIELDS["auth"] == tags
