"""Run a program with hunting on, stop it after a duration, and collect its hunt report.

The parent side of the handshake in `handoff.py`: the child (started with the `leaktrace run`
bootstrap) keeps the report file current; the parent stops it gracefully (SIGINT, which runs
the program's `finally` blocks and leaktrace's atexit shutdown), then forcibly.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TextIO

from ..config import (
    LEAKTRACE_HEAP_SAMPLE_BYTES,
    LEAKTRACE_HUNT_ENABLED,
    LEAKTRACE_HUNT_INTERVAL,
    LEAKTRACE_HUNT_MAX_DUTY,
    LEAKTRACE_HUNT_PROFILE,
    LEAKTRACE_HUNT_REPORT,
    LEAKTRACE_METRICS_PORT,
)
from .handoff import read_refusal, read_report
from .merge import merge_reports, primary_pid
from .process_group import end_group, signal_group

#: Every process of the hunted tree writes its own files: `{pid}` is replaced by its pid.
REPORT_TEMPLATE = "report-{pid}.json"
PROFILE_TEMPLATE = "heap-{pid}.pb.gz"

HUNT_RUN_DEFAULTS: Mapping[str, str] = MappingProxyType(
    {
        LEAKTRACE_HEAP_SAMPLE_BYTES: "16384",
        LEAKTRACE_HUNT_INTERVAL: "1",
        LEAKTRACE_HUNT_MAX_DUTY: "0.25",
        # No LEAKTRACE_HUNT_TRACEMALLOC here: tracing every allocation left a FastAPI service
        # answering 173 requests in 30 s instead of ~3,000 (issue 13), so where the sampler
        # cannot run the child refuses and `leaktrace hunt` says why, unless the user opts in.
    }
)


class ProgramError(RuntimeError):
    """The program could not be run, or ended without leaving a hunt report."""


class HuntRefused(RuntimeError):
    """The program ran but could not hunt (handoff.write_refusal); it was stopped at once."""


@dataclass(frozen=True)
class HuntOutcome:
    report: dict[str, Any]
    exit_status: int | None  # the program's, or None if it had to be killed
    stopped_by: str  # "exited", "SIGINT", "SIGTERM" or "SIGKILL"
    wall_s: float
    profile: bytes | None = None  # gzipped pprof of the final live heap, when asked for and left
    #: Processes of the program's group still running after it ended, killed (see process_group.py).
    outlived: bool = False


def peek_report(path: str) -> dict[str, Any] | None:
    try:
        return read_report(path)
    except (OSError, ValueError):
        return None


def process_files(directory: str, template: str) -> dict[int, str]:
    """The files the processes of a tree wrote from `template` (`{pid}` in it), by pid."""
    head, _, tail = template.partition("{pid}")
    found: dict[int, str] = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in names:
        if (
            name.startswith(head)
            and name.endswith(tail)
            and name[len(head) : len(name) - len(tail)].isdigit()
        ):
            found[int(name[len(head) : len(name) - len(tail)])] = os.path.join(directory, name)
    return found


def tree_refusal(directory: str) -> str | None:
    """Why the hunted program refused to hunt, if any of its processes said so."""
    for path in process_files(directory, REPORT_TEMPLATE).values():
        reason = read_refusal(path)
        if reason is not None:
            return reason
    return None


def tree_reports(directory: str) -> dict[int, dict[str, Any]]:
    """Every complete report the processes of the tree left, by pid."""
    reports = {}
    for pid, path in process_files(directory, REPORT_TEMPLATE).items():
        doc = peek_report(path)
        if doc is not None:
            reports[pid] = doc
    return reports


def peek_tree(directory: str) -> dict[str, Any] | None:
    """The merged report of the tree so far, or None before the first one."""
    reports = tree_reports(directory)
    return merge_reports(reports) if reports else None


def hunt_env(
    environ: Mapping[str, str],
    report_path: str,
    *,
    bootstrap_env: Callable[..., dict[str, str]],
    service_name: str | None = None,
    profile_path: str | None = None,
) -> dict[str, str]:
    """The environment of a hunted Python child: the run bootstrap plus the hunt handshake
    (and, with `profile_path`, the file the child keeps its final live heap in).

    A hunt is a diagnosis run, so it trades overhead for speed (a denser heap sample, a tick a
    second, up to a quarter of a core) unless the user set those knobs.
    """
    extra = {
        LEAKTRACE_HUNT_ENABLED: "true",
        LEAKTRACE_HUNT_REPORT: report_path,
        # A hunted program must not collide with a service already on 9464.
        LEAKTRACE_METRICS_PORT: environ.get(LEAKTRACE_METRICS_PORT, "0"),
    }
    if profile_path:
        extra[LEAKTRACE_HUNT_PROFILE] = profile_path
    for name, value in HUNT_RUN_DEFAULTS.items():
        extra[name] = environ.get(name, value)
    return bootstrap_env(environ, service_name=service_name, extra=extra)


def _hear_sigint() -> None:
    # In the child before exec. A hunt started in the background of a shell without job control
    # (`nohup leaktrace hunt ... &`, many CI runners) inherits SIGINT ignored, and an ignored signal
    # stays ignored across exec: the program would never see the graceful stop.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def hunt_program(
    command: Sequence[str],
    *,
    duration_s: float,
    environ: Mapping[str, str],
    bootstrap_env: Callable[..., dict[str, str]],
    service_name: str | None = None,
    grace_s: float = 8.0,
    progress: Callable[[float, dict[str, Any] | None], None] | None = None,
    stdout: TextIO | int | None = None,
    stderr: TextIO | int | None = None,
    clock: Callable[[], float] = time.monotonic,
    keep_profile: bool = False,
) -> HuntOutcome:
    executable = shutil.which(command[0])
    if executable is None:
        raise ProgramError(f"cannot run {command[0]!r}: command not found")
    # A process outside the group (a daemon in a session of its own) may still write there.
    with tempfile.TemporaryDirectory(prefix="leaktrace-hunt-", ignore_cleanup_errors=True) as tmp:
        report_path = os.path.join(tmp, REPORT_TEMPLATE)
        profile_path = os.path.join(tmp, PROFILE_TEMPLATE) if keep_profile else None
        env = hunt_env(
            environ,
            report_path,
            bootstrap_env=bootstrap_env,
            service_name=service_name,
            profile_path=profile_path,
        )
        start = clock()
        try:
            proc = subprocess.Popen(
                [executable, *command[1:]],
                env=env,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=_hear_sigint,
            )
        except OSError as exc:
            raise ProgramError(f"cannot run {command[0]!r}: {exc.strerror or exc}") from None
        stopped_by = "exited"
        refusal: str | None = None
        at_deadline: dict[int, dict[str, Any]] = {}
        try:
            deadline = start + duration_s
            while proc.poll() is None and clock() < deadline:
                time.sleep(min(1.0, max(0.05, deadline - clock())))
                refusal = tree_refusal(tmp)
                if refusal is not None:
                    break
                if progress is not None:
                    progress(clock() - start, peek_tree(tmp))
            if proc.poll() is None:
                # What the hunt saw over its duration. A program that does not stop on SIGINT keeps
                # its hunter ticking after the load that drove it has gone, long enough to clear
                # a real leak as "levelled"; its reports from then on are not the hunt's.
                at_deadline = tree_reports(tmp)
                for sig, wait in (
                    (signal.SIGINT, grace_s),
                    (signal.SIGTERM, 3.0),
                    (signal.SIGKILL, 5.0),
                ):
                    stopped_by = signal.Signals(sig).name
                    signal_group(proc.pid, sig)
                    try:
                        proc.wait(timeout=wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
        finally:
            if proc.poll() is None:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            # Its workers may still be finishing (writing their reports), or deaf to the stop.
            outlived = end_group(proc.pid, grace_s=grace_s)
        wall = clock() - start
        refusal = refusal or tree_refusal(tmp)
        if refusal is not None:
            raise HuntRefused(refusal)
        reports = tree_reports(tmp)
        if stopped_by in ("SIGTERM", "SIGKILL") or outlived:
            reports.update(at_deadline)
        doc = merge_reports(reports) if reports else None
        if doc is None:
            raise ProgramError(
                f"the program ended (exit status {proc.returncode}) without a hunt report: it did not run "
                "as a Python program under leaktrace, or failed at start-up"
            )
        status = proc.returncode if stopped_by in ("exited", "SIGINT") else None
        profile = None
        if profile_path:
            # The heap of the process the merged report's timeline is from (its fastest leak).
            profiles = process_files(tmp, PROFILE_TEMPLATE)
            pid = primary_pid(reports)
            chosen = profiles.get(pid) or next(iter(profiles.values()), None)
            profile = read_profile(chosen) if chosen else None
        return HuntOutcome(
            report=doc,
            exit_status=status,
            stopped_by=stopped_by,
            wall_s=wall,
            profile=profile,
            outlived=outlived,
        )


def read_profile(path: str) -> bytes | None:
    """The heap profile a hunted child left, or None (it wrote none: no heap snapshot yet)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None
