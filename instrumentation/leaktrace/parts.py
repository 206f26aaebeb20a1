"""The parts Telemetry composes, as the small interfaces it relies on.

Services and tests inject their own (a fake profiler, a sampler without the native extension);
leaktrace's are in profiling/ and analysis/. What only some profilers can do is a Protocol of
its own, asked with isinstance, so a minimal part needs no more than start and stop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from .profiling.samples import HeapSnapshot


class Profiler(Protocol):
    """The CPU profiler (pyroscope-io's agent), which samples memory too when nothing else does."""

    running: bool

    def start(self) -> bool: ...
    def stop(self) -> None: ...


@runtime_checkable
class SamplesMemory(Protocol):
    """A profiler that can sample memory: only while no other allocator hook is on."""

    @property
    def memory(self) -> bool: ...
    def set_memory(self, enabled: bool) -> None: ...


@runtime_checkable
class TagsThreads(Protocol):
    """A profiler whose samples can carry the current span (pyroscope-io's thread tags)."""

    def thread_tagger(self) -> object | None: ...


@runtime_checkable
class RestartsAfterFork(Protocol):
    """A profiler whose threads must be started again in a forked child."""

    def after_fork_in_child(self, *, tags: Mapping[str, str] | None = None) -> bool: ...


class HeapSampler(Protocol):
    """The span-linked heap sampler (profiling/heap.py), or what stands in for it."""

    @property
    def running(self) -> bool: ...
    def start(self) -> bool: ...
    def stop(self) -> None: ...
    def live_bytes(self) -> float | None: ...
    def live_snapshot(self) -> HeapSnapshot: ...
    def snapshot(
        self, reset_alloc: bool = False, *, include_alloc: bool = True
    ) -> HeapSnapshot: ...


class Background(Protocol):
    """A part with a thread of its own, stopped (in order) by Telemetry's shutdown."""

    def start(self) -> object: ...
    def stop(self) -> object: ...


@runtime_checkable
class Flushable(Protocol):
    """An SDK provider (spans, logs) as shutdown drives it: flush what is queued, then close."""

    def force_flush(self, timeout_millis: int = 30000) -> bool: ...
    def shutdown(self) -> None: ...
