"""Run a function in a forked child under a deadline and get its JSON-able result back.

A child that hangs (a deadlock on a lock inherited held) is killed at the deadline and the
call fails saying so, with the child's Python stacks (faulthandler) in its stderr.
"""

from __future__ import annotations

import faulthandler
import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any


class ChildHung(AssertionError):
    pass


def run_in_fork(child: Callable[[], Any], *, timeout: float) -> Any:
    """fork(); the child runs `child()` and exits; the parent returns its result (or raises)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into the test runner
        os.close(read_end)
        try:
            faulthandler.dump_traceback_later(max(1.0, timeout - 1.0), exit=True)
            payload = {"ok": True, "result": child()}
        except BaseException:  # noqa: BLE001 - everything goes back to the parent
            payload = {"ok": False, "error": traceback.format_exc()}
        try:
            data = json.dumps(payload).encode()
        except (TypeError, ValueError):
            data = json.dumps(
                {"ok": False, "error": f"unserializable result {payload!r}"[:2000]}
            ).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view) :]
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                raise ChildHung(f"forked child {pid} did not finish within {timeout:g} s")
            ready, _, _ = select.select([read_end], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        status = _reap(pid, deadline)
    if not chunks:
        how = (
            f"killed by signal {os.WTERMSIG(status)}"
            if os.WIFSIGNALED(status)
            else f"exit status {os.WEXITSTATUS(status)}"
        )
        raise AssertionError(f"forked child {pid} ended without a result ({how})")
    doc = json.loads(b"".join(chunks))
    if not doc["ok"]:
        raise AssertionError(f"forked child {pid} failed:\n{doc['error']}")
    return doc["result"]


def _reap(pid: int, deadline: float) -> int:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline + 5:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1]
        time.sleep(0.01)
