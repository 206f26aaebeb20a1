"""An unmodified program that prints which signals each of its threads blocks; it imports no telemetry.

Run under `leaktrace run`, every thread but the main one is telemetry's (started before this
code runs). One JSON line for this process, then one for a forked child, each listing every
task of the process with the signal mask /proc shows for it.
"""

import json
import os
import threading


def masks() -> dict[int, dict[str, object]]:
    tasks: dict[int, dict[str, object]] = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/status") as fh:
            fields = dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
        tasks[int(tid)] = {"name": fields["Name"], "blocked": int(fields["SigBlk"], 16)}
    return tasks


def report(tag: str) -> None:
    doc = {"tag": tag, "pid": os.getpid(), "main": threading.get_native_id(), "tasks": masks()}
    print(json.dumps(doc), flush=True)


report("parent")
child = os.fork()
if child == 0:
    report("child")
    os._exit(0)
os.waitpid(child, 0)
