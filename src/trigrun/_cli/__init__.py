"""The ``trigrun`` command: ``validate``, ``next``, ``fire``, ``schema``.

One module per command (``_validate``, ``_next``, ``_fire`` with ``_dry_run``, ``_fire_all``,
``_schema``), the live table of ``fire --all`` (``_table``), what they share (``_common``),
and the parser with ``main`` (``_main``).

Exit codes (also in ``trigrun --help``; docs/cli.md)::

    0    ok
    1    invalid jobs file or job spec (every problem is listed), or another error before
         anything was sent
    2    usage error: bad option or argument, unknown job name
    3    the trigger failed: the request did not succeed after its retries, or a
         secret:// reference was not found (then nothing was sent)
    4    the downstream run failed, was cancelled, or its state is unknown (--wait)
    5    the wait timed out while the run was still going (--wait)
    130  interrupted (Ctrl-C)

Errors are one line each on stderr, never a traceback and never a secret value (set
``TRIGRUN_DEBUG=1`` to see the traceback of an unexpected error).
"""

from __future__ import annotations

from ._common import cli_upstream
from ._fire import Progress
from ._main import EXIT_CODES, build_parser, main
from ._table import Board

__all__ = ["EXIT_CODES", "Board", "Progress", "build_parser", "cli_upstream", "main"]
