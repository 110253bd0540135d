"""``python -m trigrun``: the same as the ``trigrun`` command."""

from ._cli import main

raise SystemExit(main())
