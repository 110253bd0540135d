"""``trigrun validate FILE...``: every problem of every file."""

from __future__ import annotations

import argparse

from .._exceptions import SpecError
from .._loader import load_jobs
from ._common import INVALID, OK


def cmd_validate(args: argparse.Namespace) -> int:
    invalid = 0
    for path in args.files:
        try:
            specs = load_jobs(path)
        except SpecError as exc:
            invalid += 1
            for problem in exc.problems:
                print(problem)
            n = len(exc.problems)
            print(f"{path}: INVALID, {n} problem{'s' if n != 1 else ''}")
            continue
        n = len(specs)
        print(f"{path}: {n} job{'s' if n != 1 else ''} OK")
    if len(args.files) > 1:
        total = len(args.files)
        print(f"{total - invalid} of {total} files valid")
    return INVALID if invalid else OK
