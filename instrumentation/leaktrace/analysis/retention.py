"""Retention search: which container keeps a growing call path's memory alive.

A `ContainerCensus` measures the len() of every candidate holder (candidates.py) a little
at a time (a time budget per step, resumed from a cursor), and for each one that grows,
the size and allocation site of a few entries it gained (provenance: where a recently
added entry, or its direct children, was allocated, when an `object_site` function is
available; tracemalloc fallback: get_object_traceback). `attribute` then picks the
candidate that best explains a suspect's bytes (attribution.py).

Candidates: watched containers (telemetry.watch), what candidates.py finds in user modules,
live threads grouped by target, asyncio tasks grouped by coroutine (when a task source is
given), and the standard library's and site-packages' containers (foreign.py).

The census never keeps user objects: it stores names, numbers and frames. Objects are
referenced only while one step runs.
"""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from leaktrace.analysis import basetype
from leaktrace.analysis.attribution import Candidate, best_holder
from leaktrace.analysis.callpath import CallPathKey, FrameFilter, user_frames
from leaktrace.analysis.candidates import (
    Seen,
    kind,
    module_holders,
    size_of,
    task_groups,
    thread_groups,
)
from leaktrace.analysis.foreign import ForeignConfig, ForeignScan
from leaktrace.analysis.holder_names import distinct_modules
from leaktrace.analysis.model import Holder
from leaktrace.profiling.samples import Frame
from leaktrace.sizing import deep_size

ObjectSite = Callable[[object], "tuple[Frame, ...] | None"]


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    step_budget_s: float = 0.05  # wall time one census step may use
    max_candidates: int = 4096
    max_points: int = 120
    dict_fanout: int = 64  # look into the values of dicts with at most this many keys
    min_entries_growth: int = 3
    min_r_squared: float = 0.5
    sample_entries: int = 3  # recently added entries sized and located per grown candidate
    # Containers of the standard library and site-packages (foreign.py); None: user code only.
    foreign: ForeignConfig | None = field(default_factory=ForeignConfig)
    # A foreign holder must explain the bytes clearly better than a user's, watched or thread one.
    foreign_penalty: float = 0.5


class ContainerCensus:
    """Measures candidate holders over time. Call `step()` periodically from one thread."""

    def __init__(
        self,
        config: RetentionConfig = RetentionConfig(),
        *,
        containers: Callable[[], Mapping[str, object]] = dict,
        tasks: Callable[[], Iterable[Any]] | None = None,
        object_site: ObjectSite | None = None,
        frame_filter: FrameFilter | None = None,
        clock: Callable[[], float] = time.monotonic,
        modules: Callable[[], Mapping[str, types.ModuleType]] = lambda: sys.modules,
    ) -> None:
        self._config = config
        self._containers = containers
        self._tasks = tasks
        self._object_site = object_site
        self._filter = frame_filter or FrameFilter.default()
        self._clock = clock
        self._modules = modules
        self._candidates: dict[str, Candidate] = {}
        self._user_module: dict[str, bool] = {}
        self._work: list[str] = []
        # A watched container that is also a module global is reported under the global's
        # qualified name (that is what the user must fix); ids only, never the objects.
        self._watched_ids: dict[int, str] = {}
        self._shadowed: set[str] = set()
        self._cycle = 0
        self.errors = 0  # items skipped because they changed under us or raised
        self._foreign = (
            ForeignScan(
                config.foreign,
                frame_filter=self._filter,
                modules=modules,
                is_user_module=self._is_user_module,
            )
            if config.foreign is not None
            else None
        )

    @property
    def candidates(self) -> int:
        return len(self._candidates)

    def series(self, name: str) -> tuple[Sequence[float], Sequence[float]]:
        c = self._candidates.get(name)
        return (tuple(c.series.times), tuple(c.series.values)) if c else ((), ())

    def step(self, now: float | None = None) -> bool:
        """Measure candidates until the budget is spent. True when a full cycle completed."""
        t = self._clock() if now is None else now
        deadline = time.monotonic() + self._config.step_budget_s
        if not self._work:
            self._cycle += 1
            mods = self._modules()
            self._work = [
                "@threads",
                "@tasks",
                "@watched",
                "@foreign",
                *distinct_modules(
                    mods, [n for n in list(mods) if self._is_user_module(n, mods.get(n))]
                ),
            ]
            self._work.reverse()  # pop() from the end
        while self._work:
            item = self._work.pop()
            try:
                for seen in self._enumerate(item):
                    self._record(seen, t)
            except Exception:  # noqa: BLE001 - user objects may raise anything from len() or vars()
                self.errors += 1
            if time.monotonic() >= deadline:
                break
        if self._work:
            return False
        if self._foreign is not None:
            # What the cycle left of the budget goes to finding the libraries' containers.
            self._foreign.discover(deadline, time.monotonic)
        stale = [n for n, c in self._candidates.items() if c.last_cycle < self._cycle - 2]
        for n in stale:
            del self._candidates[n]
        return True

    def _is_user_module(self, name: str, mod: object) -> bool:
        known = self._user_module.get(name)
        if known is None:
            file = basetype.module_get(mod, "__file__")  # a module's __getattr__ never runs
            known = type(file) is str and self._filter.is_user(file)
            if len(self._user_module) > 65536:
                self._user_module.clear()
            self._user_module[name] = known
        return known

    def _record(self, seen: Seen, t: float) -> None:
        alias = self._watched_ids.get(id(seen.obj)) if seen.obj is not None else None
        if alias is not None and alias != seen.name:
            self._shadowed.add(alias)
            watched = self._candidates.pop(alias, None)
            if watched is not None and seen.name not in self._candidates:
                watched.name = seen.name  # keep the history measured under the watch name
                self._candidates[seen.name] = watched
                if watched.last_cycle == self._cycle:
                    return  # the same object was already measured this cycle
        c = self._candidates.get(seen.name)
        if c is None:
            if len(self._candidates) >= self._config.max_candidates:
                return
            c = self._candidates[seen.name] = Candidate(
                seen.name, seen.kind, self._config.max_points, seen.foreign
            )
        grew = len(c.series) > 0 and seen.size > c.series.last
        c.series.append(t, float(seen.size))
        c.last_cycle = self._cycle
        if grew and seen.obj is not None:
            for entry in basetype.last_items(seen.obj, self._config.sample_entries):
                c.entry_sizes.append(float(_entry_size(entry)))
                if self._object_site is not None:
                    for obj in (entry, *basetype.children(entry, 8)):
                        site = self._object_site(obj)
                        if site:
                            top = user_frames(site, self._filter)[0]
                            if (top.file, top.line) not in c.sites:
                                c.sites.append((top.file, top.line))

    def _enumerate(self, item: str) -> Iterator[Seen]:
        if item == "@threads":
            yield from thread_groups()
        elif item == "@tasks":
            if self._tasks is not None:
                yield from task_groups(self._tasks())
        elif item == "@foreign":
            if self._foreign is not None:
                for f in self._foreign.measure():
                    yield Seen(f.name, f.kind, f.size, f.obj, foreign=True)
        elif item == "@watched":
            watched = list(self._containers().items())
            self._watched_ids = {id(obj): name for name, obj in watched}
            self._shadowed &= set(self._watched_ids.values())
            for name, obj in watched:
                if name not in self._shadowed:
                    yield Seen(f"{name}", kind(obj), size_of(obj), obj)
        else:
            mod = self._modules().get(item)
            if mod is not None:
                yield from module_holders(
                    item, mod, dict_fanout=self._config.dict_fanout, on_error=self._count_error
                )

    def _count_error(self) -> None:
        self.errors += 1

    def attribute(
        self,
        site: CallPathKey,
        times: Sequence[float],
        values: Sequence[float],
        growth_bytes_per_s: float,
    ) -> Holder | None:
        """The candidate that best explains `values` (a suspect's live bytes over `times`)."""
        cfg = self._config
        return best_holder(
            list(self._candidates.values()),
            site,
            times,
            values,
            min_entries_growth=cfg.min_entries_growth,
            min_r_squared=cfg.min_r_squared,
            foreign_penalty=cfg.foreign_penalty,
        )


def _entry_size(entry: object) -> int:
    """An entry's cost: shallow size plus children two levels deep (bounded fan-out), read
    through the built-in types (a user's __sizeof__ never runs)."""
    return deep_size(entry, sizeof=basetype.builtin_sizeof, referents=basetype.children, fanout=8)
