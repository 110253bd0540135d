"""The ``trigrun`` command line: the parser, and ``main`` mapping errors to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence

from .. import __version__
from .._exceptions import RunFailed, RunTimeout, SecretNotFound, SpecError, TriggerFailed
from .._schedule import RULES
from ._common import (
    INTERRUPTED,
    INVALID,
    OK,
    RUN_FAILED,
    TRIGGER_FAILED,
    USAGE,
    WAIT_TIMEOUT,
    UsageError,
    err,
    iso_time,
    positive_float,
    positive_int,
)
from ._fire import cmd_fire
from ._next import RULES_HELP, cmd_next
from ._schema import cmd_schema
from ._validate import cmd_validate

EXIT_CODES = """\
exit codes:
  0    ok
  1    invalid jobs file or job spec (every problem is listed), or another error
       before anything was sent
  2    usage error: bad option or argument, unknown job name
  3    the trigger failed: the request did not succeed after its retries, or a
       secret:// reference was not found (then nothing was sent)
  4    the downstream run failed, was cancelled, or its state is unknown (--wait)
  5    the wait timed out while the run was still going (--wait)
  130  interrupted (Ctrl-C): the runs that keep going are named, with their URLs
       (--cancel-on-interrupt cancels them instead)

Secrets: secret://NAME reads the environment variable TRIGRUN_SECRET_NAME (upper case,
non-alphanumerics as _). Errors never show a secret value."""


def _wrap(text: str) -> str:
    """Descriptions keep their paragraphs and indented lines (raw formatter), wrapped here."""
    return "\n\n".join(p if p.startswith("  ") else textwrap.fill(p, 88)
                       for p in text.split("\n\n"))


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="trigrun", formatter_class=fmt, epilog=EXIT_CODES,
        description=_wrap("Validate, preview and fire TrigRun jobs (HTTP-triggered pipeline "
                          "runs)."))
    parser.add_argument("--version", action="version", version=f"trigrun {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", formatter_class=fmt, epilog=EXIT_CODES,
                       help="check jobs files; list every problem",
                       description=_wrap("Check jobs files (YAML or JSON: one job, a list, or "
                       "{\"jobs\": [...]}). Prints every problem of every file and one summary "
                       "line per file. Exit 0 when all are valid, 1 otherwise."))
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("next", formatter_class=fmt, epilog=EXIT_CODES,
                       help="show upcoming fire times, DST changes marked",
                       description=_wrap("Show each job's upcoming fire times in its time zone, "
                       "with UTC offset and abbreviation. Times a DST change moves, repeats or "
                       "skips are marked (DST: ...)."))
    p.add_argument("file", metavar="FILE")
    p.add_argument("--count", "-n", type=positive_int, default=5, metavar="N",
                   help="fire times per job (default: 5)")
    p.add_argument("--rules", choices=RULES, default="airflow", help=RULES_HELP)
    p.add_argument("--job", metavar="NAME", help="only this job (its name or slug)")
    p.add_argument("--from", dest="start", type=iso_time, metavar="ISO",
                   help="start here instead of now; a time without offset is read in each "
                   "job's time zone")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_next)

    p = sub.add_parser("fire", formatter_class=fmt, epilog=EXIT_CODES,
                       help="fire one job now and print its execution log",
                       description=_wrap("Send a job's trigger request now (with its retries "
                       "and idempotency key). stderr logs what happens (attempts, the run and "
                       "its URL, each new state); stdout gets one summary: status, duration, "
                       "attempts, new or adopted run, run id and URL (--verbose: also the "
                       "response). Secrets come from TRIGRUN_SECRET_* environment variables. "
                       "--dry-run sends nothing."))
    p.add_argument("file", metavar="FILE")
    p.add_argument("--job", metavar="NAME", help="the job to fire (optional when FILE holds one)")
    p.add_argument("--all", action="store_true",
                   help="fire every enabled job of FILE, at most --concurrency at once (and "
                   "each queue's concurrency_limit); a live table on stderr, one line per job")
    p.add_argument("--concurrency", type=positive_int, metavar="N",
                   help="with --all: jobs in flight at once, from fire to the run's end "
                   "(default: 10)")
    p.add_argument("--wait", action="store_true",
                   help="then wait for the run to end, progress on stderr")
    p.add_argument("--dry-run", action="store_true",
                   help="print the request instead of sending it (secrets as secret:// refs)")
    p.add_argument("--json", action="store_true",
                   help="print {\"trigger\": <execution log>, \"run\": <run result or null>}")
    p.add_argument("--scheduled-time", type=iso_time, metavar="ISO",
                   help="the fire's scheduled time (templates, idempotency key); default now. "
                   "Without offset it is read in the job's time zone")
    p.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                   help="with --wait: give up after this long (default: wait.timeout_seconds)")
    p.add_argument("--poll-interval", type=positive_float, metavar="SECONDS",
                   help="with --wait: seconds between status checks "
                   "(default: wait.poll_interval_seconds)")
    p.add_argument("--cancel-on-interrupt", action="store_true",
                   help="with --wait: on Ctrl-C cancel each run still going (one cancel "
                   "request per run) instead of leaving it running")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="the execution log in full: every attempt, the target, the "
                   "idempotency key and the response")
    p.set_defaults(func=cmd_fire)

    p = sub.add_parser("schema", formatter_class=fmt, epilog=EXIT_CODES,
                       help="write the JSON Schema of a jobs file",
                       description=_wrap("Write the JSON Schema of a jobs file (one job, a "
                       "list, or {\"jobs\": [...]}), generated from trigrun's models, for "
                       "editors. With the YAML language server, start a jobs file with:\n\n"
                       "  # yaml-language-server: $schema=./trigrun.schema.json"))
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else USAGE
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return USAGE
    try:
        code: int = args.func(args)
        return code
    except UsageError as exc:
        err(str(exc))
        return USAGE
    except SpecError as exc:
        for problem in exc.problems:
            err(problem)
        return INVALID
    except SecretNotFound as exc:
        err(str(exc))
        return TRIGGER_FAILED
    except RunTimeout as exc:
        err(str(exc))
        return WAIT_TIMEOUT
    except RunFailed as exc:
        err(str(exc))
        return RUN_FAILED
    except TriggerFailed as exc:
        err(str(exc))
        return TRIGGER_FAILED
    except KeyboardInterrupt:
        print(file=sys.stderr)
        err("interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): not an error worth a message. Point stdout at
        # devnull so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return OK
    except Exception as exc:
        if os.environ.get("TRIGRUN_DEBUG"):
            raise
        err(f"unexpected error: {type(exc).__name__}: {exc}")
        return INVALID
