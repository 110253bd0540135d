"""``python -m benchmarks``: run every benchmark and write ``benchmarks/README.md``.

    python -m benchmarks            # the documented run (about an hour on 2 cores)
    python -m benchmarks --quick    # a 1-2 minute smoke run at small sizes
    python -m benchmarks --only poll,fire --out /tmp/bench.md

Raw results go to ``results.json`` next to the report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._common import machine_info
from ._report import render
from ._suite import (
    FULL,
    QUICK,
    batch_section,
    capacity_section,
    fire_section,
    import_section,
    parse_section,
    poll_section,
    warm_bytecode,
)
from ._triggerer import triggerer_section

SECTIONS = {"poll": poll_section, "batch": batch_section, "fire": fire_section,
            "parse": parse_section, "import": import_section, "capacity": capacity_section,
            "triggerer": triggerer_section}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, about 1-2 minutes")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections ({', '.join(SECTIONS)})")
    p.add_argument("--out", type=Path, default=None,
                   help="the report (default: benchmarks/README.md; with --quick a file in "
                   "the temp directory, so a smoke run never replaces the documented results)")
    p.add_argument("--merge", action="store_true",
                   help="keep the other sections of the committed results.json (a full run) "
                   "and replace only the --only ones; the report says which were re-run")
    args = p.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.out is None:
        args.out = (Path(tempfile.gettempdir()) / "trigrun-bench-quick.md" if args.quick
                    else Path(__file__).with_name("README.md"))
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")

    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    results: dict[str, Any] = {"plan": plan.name, "machine": machine_info(),
                               "load_before": os.getloadavg(), "sections": {}}
    warm_bytecode(log)
    for name in only:
        t0 = time.monotonic()
        results["sections"][name] = SECTIONS[name](plan, log)
        results["sections"][name]["seconds"] = time.monotonic() - t0
    results["load_after"] = os.getloadavg()
    results["total_s"] = time.monotonic() - started
    if args.merge:
        if args.quick:
            p.error("--merge keeps sections of the full run: not with --quick")
        base = json.loads(Path(__file__).with_name("results.json").read_text())
        rerun = {"sections": only, "seconds": results["total_s"],
                 "load": [results["load_before"], results["load_after"]]}
        base["sections"].update(results["sections"])
        base["rerun"] = [*base.get("rerun", []), rerun]
        results = base
    args.out.write_text(render(results))
    args.out.with_name(args.out.stem + ".json" if args.quick else "results.json").write_text(
        json.dumps(results, indent=1, default=str))
    log(f"wrote {args.out} ({results['total_s']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
