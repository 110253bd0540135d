"""The status server (``benchmarks._server``) with one more control route, for the triggerer run.

``GET /end`` (control port) ends every scheduled run now: the runs of the reset's schedule
(``n``/``spread``) then leave the active listing and appear in the ended one. The triggerer
run needs it because how long Airflow takes to start the triggers is what it measures, so the
runs' end cannot be fixed in advance as the capacity section fixes it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from . import _server

_handle_control = _server.handle_control


def handle_control(method: str, target: str, body: bytes, now: float) -> tuple[int, bytes]:
    if urlsplit(target).path == "/end":
        st = _server.STATE
        if st.interval is None:
            return 400, b'{"detail":"no clock-driven reset"}'
        # A run ends (polls - 1.5) intervals after its trigger time: make that now for a run
        # triggered at the reset (spread 0), and as long after its own trigger for the others.
        st.polls = (now - st.started) / st.interval + 1.5  # type: ignore[assignment]
        return 200, b'{"ok":true}'
    return _handle_control(method, target, body, now)


def main() -> None:
    # serve() looks the handler up when a control connection is made.
    _server.handle_control = handle_control  # type: ignore[assignment]
    _server.main()


if __name__ == "__main__":
    main()
