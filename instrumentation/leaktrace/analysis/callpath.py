"""What "the call path" of an allocation is, for grouping heap samples.

A raw stack starts at the frame that asked for memory, which is often not where the
bug is: `dict.copy` inside `json`, `bytearray` inside a library, a frame of leaktrace's
own wrapper. The leak is reported at the first frame of *user* code (not the standard
library, not site-packages, not leaktrace itself), and samples are grouped by the first
`depth` user frames: deep enough to tell two callers of a shared helper apart, shallow
enough that the framework frames below the handler (which differ between requests)
do not split one leak into many small ones.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from leaktrace.profiling.samples import Frame

CallPathKey = tuple[Frame, ...]


def _norm(path: str) -> str:
    return os.path.normcase(os.path.abspath(path)) if path and not path.startswith("<") else path


def _leaktrace_dir() -> str:
    # This file lives in leaktrace/analysis/; leaktrace's own frames are never user code.
    return _norm(os.path.dirname(os.path.dirname(__file__)))


def _package_dirs(name: str) -> list[str]:
    """Every directory a (namespace) package lives in, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    return [_norm(p) for p in locations]


#: Packages whose allocations are telemetry's own: OpenTelemetry's API, SDK, exporters,
#: instrumentations and semantic conventions all live in the `opentelemetry` namespace package
#: (one directory per installation location); pyroscope-io is the CPU profiler's agent.
TELEMETRY_PACKAGES: tuple[str, ...] = ("opentelemetry", "pyroscope")


def _telemetry_prefixes() -> tuple[str, ...]:
    dirs = [_leaktrace_dir()]
    for package in TELEMETRY_PACKAGES:
        dirs.extend(_package_dirs(package))
    return tuple(sorted({p + os.sep for p in dirs if p}))


@dataclass(frozen=True, slots=True)
class FrameFilter:
    """Which files are *not* user code: path prefixes plus pseudo-files such as `<frozen ...>`."""

    library_prefixes: tuple[str, ...]
    own_prefix: str = _leaktrace_dir() + os.sep
    # Code whose allocations are telemetry's own whoever called it: leaktrace, OpenTelemetry
    # (API, SDK, exporters, instrumentations) and pyroscope-io. Spans and log records wait in the
    # SDK's bounded export queues; with a slow or dead collector that queue fills and drains in
    # a sawtooth that looks like growth at the user's `start_as_current_span` line, or (spans an
    # instrumentor or the framework itself started) at library frames.
    telemetry_prefixes: tuple[str, ...] = _telemetry_prefixes()

    @classmethod
    def default(cls, extra_prefixes: Iterable[str] = ()) -> FrameFilter:
        paths = sysconfig.get_paths()
        prefixes = {paths.get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")}
        prefixes |= {p for p in sys.path if "site-packages" in p or "dist-packages" in p}
        prefixes.add(_leaktrace_dir())
        prefixes.update(extra_prefixes)
        return cls(tuple(sorted(_norm(p) + os.sep for p in prefixes if p)))

    def is_own(self, file: str) -> bool:
        """leaktrace's own code: the hunter must not report the profiler's bookkeeping."""
        return bool(file) and _norm(file).startswith(self.own_prefix)

    def is_telemetry(self, file: str) -> bool:
        return bool(file) and _norm(file).startswith(self.telemetry_prefixes)

    def is_user(self, file: str) -> bool:
        if not file or file.startswith("<"):
            return False
        norm = _norm(file)
        return not norm.startswith(self.library_prefixes)


def user_frames(frames: Sequence[Frame], frame_filter: FrameFilter) -> tuple[Frame, ...]:
    """The stack from the first to the last user frame (the runner's frames below `main`
    and the library frames above the allocating line are noise); the whole stack if none
    is user code."""
    user = [i for i, frame in enumerate(frames) if frame_filter.is_user(frame.file)]
    if not user:
        return tuple(frames)
    return tuple(frames[user[0] : user[-1] + 1])


def is_telemetry(frames: Sequence[Frame], frame_filter: FrameFilter) -> bool:
    """Telemetry's own memory: a telemetry frame (leaktrace, OpenTelemetry, pyroscope-io) lies
    between the allocation and the first user frame, or anywhere on a stack with no user frame.

    Whoever called it: the user's `start_as_current_span` line, an instrumentor's middleware, a
    framework's native OpenTelemetry support, or an SDK thread. Telemetry frames *below* user
    code (the ASGI middleware around a handler) do not count: the handler's allocations are
    the user's.
    """
    for f in frames:
        if frame_filter.is_user(f.file):
            return False
        if frame_filter.is_telemetry(f.file):
            return True
    return False


def call_path_key(
    frames: Sequence[Frame], frame_filter: FrameFilter, depth: int = 2
) -> CallPathKey:
    """Grouping key: the first `depth` user frames (library frames between them are skipped).

    Empty for telemetry's own memory (`is_telemetry`), which is never a suspect.
    """
    if is_telemetry(frames, frame_filter):
        return ()
    trimmed = user_frames(frames, frame_filter)
    picked: list[Frame] = []
    for f in trimmed:
        # Skip library frames, and repeats of one line (a 3.11 comprehension is its own frame).
        if frame_filter.is_user(f.file) and not (
            picked and (picked[-1].file, picked[-1].line) == (f.file, f.line)
        ):
            picked.append(f)
            if len(picked) == depth:
                break
    return tuple(picked) if picked else tuple(trimmed[:depth])


def format_frame(frame: Frame, *, short: bool = True) -> str:
    """`module-ish.function:line` for labels and human output."""
    file = os.path.basename(frame.file) if short else frame.file
    stem = file.removesuffix(".py")
    return f"{stem}.{frame.function}:{frame.line}"
