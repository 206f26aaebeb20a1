"""Retention search: which container keeps a growing call path's memory alive.

The model is "map growth against heap growth": a leak's live bytes grow because some
container gains entries, so over the same window

    bytes(t) ~= a + b * entries(t)

fits well (high R^2), with b the bytes each entry retains. A `ContainerCensus` measures
the len() of every candidate holder a little at a time (a time budget per step, resumed
from a cursor), and `attribute` fits each candidate against a suspect's bytes series and
picks the best, using two independent checks to break the tie between containers that
all grow linearly:

- size consistency: b against the measured size of recently added entries;
- provenance: where a recently added entry (or its direct children) was allocated, when
  an `object_site` function is available (tracemalloc fallback: get_object_traceback).

Candidates: watched containers (telemetry.watch), module-level globals of user modules,
dict values one level down, attributes of user classes and of module-level instances of
user classes, `functools.lru_cache` wrappers (cache_info().currsize), closure cells of
module-level functions, live threads grouped by target, and asyncio tasks grouped by
coroutine (when a task source is given).

The census never keeps user objects: it stores names, numbers and frames. Objects are
referenced only while one step runs.
"""

from __future__ import annotations

import collections
import functools
import math
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from leaktrace.analysis import basetype
from leaktrace.analysis.analyzer import Series
from leaktrace.analysis.callpath import CallPathKey, FrameFilter, user_frames
from leaktrace.analysis.foreign import ForeignConfig, ForeignScan
from leaktrace.analysis.model import Holder, TimeSeries
from leaktrace.analysis.trend import ols
from leaktrace.profiling.samples import Frame

ObjectSite = Callable[[object], "tuple[Frame, ...] | None"]

_GROWABLE: tuple[type, ...] = (dict, list, set, collections.deque, bytearray)
_UNSIZED_KINDS = frozenset({"lru_cache", "threads", "tasks"})


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


@dataclass(frozen=True, slots=True)
class _Seen:
    name: str
    kind: str
    size: int
    obj: Any  # only during one step
    foreign: bool = False


class _Candidate:
    __slots__ = ("entry_sizes", "foreign", "kind", "last_cycle", "name", "series", "sites")

    def __init__(self, name: str, kind: str, capacity: int, foreign: bool = False) -> None:
        self.name = name
        self.kind = kind
        self.foreign = foreign
        self.series = Series(capacity)
        self.entry_sizes: collections.deque[float] = collections.deque(maxlen=16)
        self.sites: collections.deque[tuple[str, int]] = collections.deque(maxlen=32)
        self.last_cycle = 0


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
        self._candidates: dict[str, _Candidate] = {}
        self._user_module: dict[str, bool] = {}
        self._work: list[str] = []
        # A watched container that is also a module global is reported under the global's
        # qualified name (that is what the user must fix); ids only, never the objects.
        self._watched_ids: dict[int, str] = {}
        self._shadowed: set[str] = set()
        self._cycle = 0
        self.errors = 0  # items skipped because they changed under us or raised
        self._foreign = (
            ForeignScan(config.foreign, frame_filter=self._filter, modules=modules, is_user_module=self._is_user_module)
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
                *_distinct_modules(mods, [n for n in list(mods) if self._is_user_module(n, mods.get(n))]),
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

    def _record(self, seen: _Seen, t: float) -> None:
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
            c = self._candidates[seen.name] = _Candidate(seen.name, seen.kind, self._config.max_points, seen.foreign)
        grew = len(c.series) > 0 and seen.size > c.series.last
        c.series.append(t, float(seen.size))
        c.last_cycle = self._cycle
        if grew and seen.obj is not None:
            for entry in _recent_entries(seen.obj, self._config.sample_entries):
                c.entry_sizes.append(float(_deep_size(entry)))
                if self._object_site is not None:
                    for obj in (entry, *_children(entry)):
                        site = self._object_site(obj)
                        if site:
                            top = user_frames(site, self._filter)[0]
                            if (top.file, top.line) not in c.sites:
                                c.sites.append((top.file, top.line))

    # --- enumeration ---------------------------------------------------------------------
    def _enumerate(self, item: str) -> Iterator[_Seen]:
        if item == "@threads":
            yield from self._threads()
        elif item == "@tasks":
            if self._tasks is not None:
                yield from self._grouped_tasks()
        elif item == "@foreign":
            if self._foreign is not None:
                for f in self._foreign.measure():
                    yield _Seen(f.name, f.kind, f.size, f.obj, foreign=True)
        elif item == "@watched":
            watched = list(self._containers().items())
            self._watched_ids = {id(obj): name for name, obj in watched}
            self._shadowed &= set(self._watched_ids.values())
            for name, obj in watched:
                if name not in self._shadowed:
                    yield _Seen(f"{name}", _kind(obj), _size_of(obj), obj)
        else:
            mod = self._modules().get(item)
            if mod is not None:
                yield from self._module(item, mod)

    def _threads(self) -> Iterator[_Seen]:
        groups: dict[str, int] = {}
        for th in threading.enumerate():
            d = basetype.instance_dict(th)  # a Thread subclass's property never runs
            target = dict.get(d, "_target") if d is not None else None
            label = _qualname(target) if target is not None else _qualname(type(th))
            groups[label] = groups.get(label, 0) + 1
        for label, n in groups.items():
            yield _Seen(f"threads running {label}", "threads", n, None)

    def _grouped_tasks(self) -> Iterator[_Seen]:
        assert self._tasks is not None
        groups: dict[str, int] = {}
        for task in list(self._tasks()):
            label = _task_label(task)
            groups[label] = groups.get(label, 0) + 1
        for label, n in groups.items():
            yield _Seen(f"tasks running {label}", "tasks", n, None)

    def _module(self, modname: str, mod: types.ModuleType) -> Iterator[_Seen]:
        display = _module_display_name(modname, mod)
        for name, value in basetype.module_dict(mod).items():
            if name.startswith("__"):
                continue
            # One bad global (a proxy whose __class__ raises outside a request, say) must
            # not hide the rest of its module.
            try:
                yield from self._global(display, modname, name, value)
            except Exception:  # noqa: BLE001
                self.errors += 1

    def _global(self, display: str, modname: str, name: str, value: object) -> Iterator[_Seen]:
        path = f"{display}.{name}"
        yield from self._value(path, value, modname, depth=0)
        cls = type(value)  # type(), not isinstance(): no __class__ property of a proxy runs
        if issubclass(cls, type) and basetype.class_module(value) == modname:  # type: ignore[arg-type]
            qual = basetype.class_qualname(value)  # type: ignore[arg-type]
            for attr, cval in list(basetype.class_dict(value).items()):  # type: ignore[arg-type]
                if not attr.startswith("__"):
                    yield from self._value(f"{display}.{qual}.{attr}", cval, modname, depth=1)
        elif cls is types.FunctionType and value.__module__ == modname:
            yield from self._closure(path, value)  # type: ignore[arg-type]
        elif (d := self._instance_dict(value)) is not None:
            # Instances of any class (a user's object, a prometheus-client metric and its label
            # children, a library's client), one level down.
            for attr, ival in basetype.dict_items(d):
                if type(attr) is str:
                    yield from self._value(f"{path}.{attr}", ival, modname, depth=1)

    def _value(self, path: str, value: object, modname: str, depth: int) -> Iterator[_Seen]:
        cls = type(value)
        if cls is staticmethod or cls is classmethod:
            value = value.__func__  # type: ignore[attr-defined]
            cls = type(value)
        if issubclass(cls, _GROWABLE):
            size = _size_of(value)
            yield _Seen(path, _kind(value), size, value)
            if depth == 0 and issubclass(cls, dict) and size <= self._config.dict_fanout:
                for key, inner in basetype.dict_items(value):
                    if issubclass(type(inner), _GROWABLE) and type(key) in (str, int):
                        yield _Seen(f"{path}[{key!r}]", _kind(inner), _size_of(inner), inner)
        elif _is_lru_cache(value):
            try:
                size = int(value.cache_info().currsize)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001
                return
            yield _Seen(path, "lru_cache", size, None)
        elif cls is types.FunctionType and depth == 1:
            yield from self._closure(path, value)  # type: ignore[arg-type]

    def _closure(self, path: str, fn: types.FunctionType) -> Iterator[_Seen]:
        cells = fn.__closure__ or ()
        for var, cell in zip(fn.__code__.co_freevars, cells, strict=True):
            try:
                inner = cell.cell_contents
            except ValueError:  # empty cell
                continue
            if issubclass(type(inner), _GROWABLE):
                yield _Seen(f"{path}.<closure>.{var}", _kind(inner), _size_of(inner), inner)

    @staticmethod
    def _instance_dict(value: object) -> dict[str, Any] | None:
        cls = type(value)
        if issubclass(cls, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
            return None
        if _is_lru_cache(value):
            return None
        return basetype.instance_dict(value)

    # --- attribution ---------------------------------------------------------------------
    def attribute(
        self, site: CallPathKey, times: Sequence[float], values: Sequence[float], growth_bytes_per_s: float
    ) -> Holder | None:
        """The candidate that best explains `values` (a suspect's live bytes over `times`)."""
        if len(times) < 4 or not site:
            return None
        cfg = self._config
        t0 = times[0]
        top = (site[0].file, site[0].line)
        best: tuple[float, Holder, _Candidate] | None = None
        for c in list(self._candidates.values()):
            ct, cv = c.series.times, c.series.values
            if len(ct) < 3 or ct[-1] <= t0 or cv[-1] - min(cv) < cfg.min_entries_growth:
                continue  # cheap rejection first: most candidates never grow
            xs, ys = _align(ct, cv, times, values)
            if len(xs) < 4:
                continue
            growth = xs[-1] - min(xs)
            if growth < cfg.min_entries_growth:
                continue
            _, b, r2 = ols(xs, ys)
            if b <= 0 or r2 < cfg.min_r_squared:
                continue
            confirmed = top in c.sites
            if c.kind in _UNSIZED_KINDS or not c.entry_sizes:
                consistency = 0.5
            else:
                entry = sorted(c.entry_sizes)[len(c.entry_sizes) // 2]
                consistency = math.exp(-abs(math.log(b / entry))) if entry > 0 else 0.0
            score = r2 + consistency + (2.0 if confirmed else 0.0) - (cfg.foreign_penalty if c.foreign else 0.0)
            # Measured on the census's own clock, over the part that overlaps the suspect.
            idx = [i for i, t in enumerate(ct) if t >= t0] or [0]
            first = idx[0]
            span = ct[-1] - ct[first]
            holder = Holder(
                name=c.name,
                kind=c.kind,
                entries_growth=int(cv[-1] - cv[first]),
                span_s=span,
                bytes_per_entry=b,
                r_squared=r2,
                confirmed=confirmed,
            )
            if best is None or score > best[0]:
                best = (score, holder, c)
        if best is None:
            return None
        # The winner's entry counts over the run, for the report's "entries against bytes" chart.
        return replace(best[1], entries=TimeSeries.of(best[2].series.times, best[2].series.values))


def _align(
    ct: Sequence[float], cv: Sequence[float], times: Sequence[float], values: Sequence[float]
) -> tuple[list[float], list[float]]:
    """Pairs (entries, bytes): for each suspect time, the last census value at or before it."""
    xs: list[float] = []
    ys: list[float] = []
    j = -1
    for t, y in zip(times, values, strict=False):
        while j + 1 < len(ct) and ct[j + 1] <= t:
            j += 1
        if j >= 0:
            xs.append(cv[j])
            ys.append(y)
    return xs, ys


_LRU_WRAPPER: type = type(functools.lru_cache(maxsize=1)(lambda: None))


def _is_lru_cache(value: object) -> bool:
    # By type, not by getattr: a user object's __getattr__ may answer anything (and have
    # side effects). The C wrapper's type is functools._lru_cache_wrapper (by identity: a
    # subclass could override cache_info); the pure-Python fallback wraps a plain function
    # carrying cache_info.
    if type(value) is _LRU_WRAPPER:
        return True
    return type(value) is types.FunctionType and "cache_info" in value.__dict__


def _size_of(obj: object) -> int:
    """len() through the built-in base type: a subclass's own __len__ never runs."""
    return basetype.length(obj)


def _kind(obj: object) -> str:
    base = basetype.sized_base(obj)
    return base.__name__ if base is not None else "object"


def _recent_entries(obj: object, n: int) -> list[object]:
    """The last `n` entries added, where insertion order is known (dict, list, deque)."""
    return basetype.last_items(obj, n)


def _children(obj: object) -> list[object]:
    """Direct referents worth sizing or locating: tuple items, dict values, closure cells, attrs."""
    return basetype.children(obj, 8)


def _deep_size(obj: object, depth: int = 2) -> int:
    """Shallow size plus children, `depth` levels deep (bounded fan-out): an entry's cost.
    Sizes come from the built-in types' own __sizeof__: a user override never runs."""
    size = basetype.builtin_sizeof(obj)
    if depth > 0:
        for child in _children(obj):
            size += _deep_size(child, depth - 1)
    return size


def _qualname(obj: object) -> str:
    # A thread's target: a function or a class (read through their own C attributes), else
    # only its type is named (a callable object's __getattr__ never runs).
    if type(obj) in (types.FunctionType, types.BuiltinFunctionType):
        mod, name = obj.__module__ or "", obj.__qualname__  # type: ignore[attr-defined]
    elif type(obj) is types.MethodType:
        return _qualname(obj.__func__)
    elif issubclass(type(obj), type):
        mod, name = basetype.class_module(obj) or "", basetype.class_qualname(obj)  # type: ignore[arg-type]
    else:
        cls = type(obj)
        mod, name = basetype.class_module(cls) or "", basetype.class_qualname(cls)
    if mod == "__main__":
        main = sys.modules.get("__main__")
        mod = _module_display_name("__main__", main) if main is not None else mod
    return f"{mod}.{name}" if mod else str(name)


def _distinct_modules(modules: Mapping[str, object], names: Iterable[str]) -> list[str]:
    """Sorted, one name per module object: an alias of the main module (multiprocessing's
    `__mp_main__`) would name the same globals twice; `__main__` sorts first and is kept."""
    out: list[str] = []
    seen: set[int] = set()
    for name in sorted(names):
        mod = modules.get(name)
        key = id(mod) if mod is not None else id(name)
        if key not in seen:
            seen.add(key)
            out.append(name)
    return out


def _task_label(task: object) -> str:
    """The coroutine's qualified name, through asyncio's own Task.get_coro and the coroutine
    type's getset (a Task subclass's override or a custom awaitable's attributes never run)."""
    import asyncio

    cls = type(task)
    if issubclass(cls, asyncio.Task):
        coro: Any = None
        try:
            coro = asyncio.Task.get_coro(task)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001
            coro = None
        if type(coro) in (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType):
            return str(coro.__qualname__)
    return basetype.class_qualname(cls)


def _module_display_name(modname: str, mod: object) -> str:
    """`__main__` is named after what ran: `-m pkg.mod` keeps its spec name, a script its stem."""
    if modname != "__main__":
        return modname
    spec = basetype.module_get(mod, "__spec__")
    spec_dict = basetype.instance_dict(spec) if spec is not None else None
    spec_name = spec_dict.get("name") if spec_dict is not None else None
    if type(spec_name) is str and spec_name:
        return spec_name
    file = basetype.module_get(mod, "__file__")
    if type(file) is str:
        return os.path.splitext(os.path.basename(file))[0]
    return modname
