"""``trigrun schema``: the JSON Schema of a jobs file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._schema import jobs_file_schema_json
from ._common import INVALID, OK, err


def cmd_schema(args: argparse.Namespace) -> int:
    text = jobs_file_schema_json()
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        err(f"cannot write {args.output}: {exc.strerror}")
        return INVALID
    print(f"wrote {args.output}; point editors at it with the first line\n"
          f"# yaml-language-server: $schema={args.output}")
    return OK
