"""Stopping a socketserver at once instead of after its poll interval.

`BaseServer.shutdown()` sets a flag and waits until `serve_forever` looks at it, which it does
after each `select()` with a 0.5 s timeout: every process serving /metrics waited up to half a
second at exit. Connecting to the server wakes its `select()`; the empty connection is read as
EOF and closed by the handler, and the loop then sees the flag.
"""

from __future__ import annotations

import socket
from typing import Any

from ._signals import start_thread


def shutdown_now(server: Any, *, timeout_s: float = 2.0, poke_every_s: float = 0.01) -> bool:
    """`server.shutdown()` without the poll-interval wait; True when the loop stopped in time."""
    try:
        done = start_thread(server.shutdown, name="leaktrace-metrics-stop")
    except RuntimeError:
        # A finalizing interpreter (3.12+, after threading's shutdown) starts no thread: stop
        # the plain way, at the cost of the poll interval.
        server.shutdown()
        return True
    host, port = server.server_address[:2]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    waited = 0.0
    while done.is_alive() and waited < timeout_s:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                pass
        except OSError:
            pass  # not accepting any more: the loop is leaving
        done.join(poke_every_s)
        waited += poke_every_s
    return not done.is_alive()
