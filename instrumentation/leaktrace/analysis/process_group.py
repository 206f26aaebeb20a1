"""The hunted program's process group: signalled as one, and gone before its reports are read.

`leaktrace hunt` starts the program in a session of its own, so every process it starts (pool
workers, a forkserver, a supervisor's workers) is in one process group. The program's own
exit does not end the others: a worker finishing its shutdown still writes its report, and one
that never heard its stop (a main thread stuck in a wait) goes on forever. Reading the reports,
or removing their directory, before the group is gone races with them.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs; zombies do not count.

    An orphan's zombie lingers where the machine's pid 1 does not reap (some containers), and
    kill(2) still finds it: /proc tells a zombie from a process where there is one.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command: state, ppid, pgrp (proc(5)).
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def end_group(
    pgid: int, *, grace_s: float, alive: Callable[[int], bool] = group_alive, poll_s: float = 0.05
) -> bool:
    """Wait up to `grace_s` for the rest of the group to end, then SIGKILL what is left.

    True when something had to be killed (its report is what it last wrote).
    """
    deadline = time.monotonic() + grace_s
    while alive(pgid):
        if time.monotonic() >= deadline:
            signal_group(pgid, signal.SIGKILL)
            gone_by = time.monotonic() + 5.0
            while alive(pgid) and time.monotonic() < gone_by:
                time.sleep(poll_s)
            return True
        time.sleep(poll_s)
    return False
