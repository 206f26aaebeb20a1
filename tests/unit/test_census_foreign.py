"""The census reaches the standard library's and site-packages' holders, and runs none of the
host's code while it looks (issue 16)."""

from __future__ import annotations

import collections
import threading
import types
from typing import Any

from leaktrace.analysis.callpath import FrameFilter
from leaktrace.analysis.retention import ContainerCensus, RetentionConfig
from leaktrace.profiling.samples import Frame

LIB = "/usr/lib/python3.11/"
FF = FrameFilter(library_prefixes=(LIB,))
SITE = (Frame("request_logger", "/app/service.py", 16),)
CALLS: list[str] = []  # every call of any code the census must not run


def record(name: str) -> None:
    CALLS.append(name)


class Meta(type):
    """A metaclass whose every class-level attribute read is code."""

    def __getattribute__(cls, name: str) -> Any:
        record(f"Meta.__getattribute__({name})")
        return super().__getattribute__(name)

    def __getattr__(cls, name: str) -> Any:
        record(f"Meta.__getattr__({name})")
        raise AttributeError(name)


class SpyDict(dict):  # type: ignore[type-arg]
    def __len__(self) -> int:
        record("SpyDict.__len__")
        return 10**6

    def items(self) -> Any:  # type: ignore[override]
        record("SpyDict.items")
        return super().items()

    def values(self) -> Any:  # type: ignore[override]
        record("SpyDict.values")
        return super().values()

    def keys(self) -> Any:  # type: ignore[override]
        record("SpyDict.keys")
        return super().keys()

    def __iter__(self) -> Any:
        record("SpyDict.__iter__")
        return super().__iter__()

    def __getitem__(self, key: Any) -> Any:
        record("SpyDict.__getitem__")
        return super().__getitem__(key)

    def __reversed__(self) -> Any:
        record("SpyDict.__reversed__")
        return super().__reversed__()

    def __sizeof__(self) -> int:
        record("SpyDict.__sizeof__")
        return 1

    def __getattribute__(self, name: str) -> Any:
        record(f"SpyDict.__getattribute__({name})")
        return super().__getattribute__(name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # type: ignore[override]
        record("SpyDict.__class__")
        return dict


class SpyList(list):  # type: ignore[type-arg]
    def __len__(self) -> int:
        record("SpyList.__len__")
        return 0

    def __getitem__(self, i: Any) -> Any:
        record("SpyList.__getitem__")
        return super().__getitem__(i)

    def __iter__(self) -> Any:
        record("SpyList.__iter__")
        return super().__iter__()


class Manager:
    """Like logging.Manager: the container sits in an instance held by a class attribute."""

    def __init__(self) -> None:
        self.loggerDict: SpyDict = SpyDict()

    def __getattr__(self, name: str) -> Any:
        record(f"Manager.__getattr__({name})")
        raise AttributeError(name)

    def __getattribute__(self, name: str) -> Any:
        if name != "__dict__":
            record(f"Manager.__getattribute__({name})")
        return object.__getattribute__(self, name)


class Logger:
    manager = Manager()


class Tricky(metaclass=Meta):
    registry = SpyList()


class DictProperty:
    """An instance whose __dict__ is a property: the census must not call it."""

    @property  # type: ignore[misc]
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        record("DictProperty.__dict__")
        return {"x": []}


class SpyThread(threading.Thread):
    @property
    def _target(self) -> Any:  # type: ignore[override]
        record("SpyThread._target")
        return None

    @_target.setter
    def _target(self, value: Any) -> None:
        pass


def lazy_module_getattr(name: str) -> Any:
    record(f"module.__getattr__({name})")
    raise AttributeError(name)


def fake_module(name: str, file: str | None, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    if file is not None:
        mod.__file__ = file
    mod.__getattr__ = lazy_module_getattr  # type: ignore[method-assign]
    for key, value in attrs.items():
        setattr(mod, key, value)
    return mod


def modules() -> dict[str, types.ModuleType]:
    Logger.__module__ = "fakelib"
    lib = fake_module(
        "fakelib",
        LIB + "fakelib/__init__.py",
        Logger=Logger,
        Manager=Manager,
        TABLE=SpyDict(a=1),
        tricky=Tricky,
        odd=DictProperty(),
        BUF=collections.deque([1, 2]),
    )
    user = fake_module(
        "app.service",
        "/app/service.py",
        CACHE=SpyDict(),
        ITEMS=SpyList([1, 2, 3]),
        weird=DictProperty(),
        Tricky=Tricky,
    )
    builtin = fake_module(
        "nofile", None, DATA=SpyDict()
    )  # no __file__: its __getattr__ must not run
    return {"fakelib": lib, "app.service": user, "nofile": builtin}


def test_the_census_runs_none_of_the_hosts_code_and_reads_base_type_sizes() -> None:
    # GIVEN containers whose every method, property and __getattr__ records its call, in a user
    # module, a library module and a module without a file, and a thread whose _target is code
    mods = modules()
    user_cache: SpyDict = mods["app.service"].CACHE
    thread_started = threading.Event()
    stop = threading.Event()
    th = SpyThread(target=None, daemon=True)
    th.run = lambda: (thread_started.set(), stop.wait())  # type: ignore[method-assign]
    th.start()
    thread_started.wait(5)
    CALLS.clear()
    try:
        census = ContainerCensus(RetentionConfig(), modules=lambda: mods, frame_filter=FF)
        for step in range(30):
            dict.__setitem__(user_cache, f"k{step}", bytearray(100))
            dict.__setitem__(Logger.manager.__dict__["loggerDict"], f"app.{step}", [step])
            census.step(now=float(step))
    finally:
        stop.set()
        th.join(5)
    # THEN none of it ran
    assert CALLS == []
    # AND the sizes are the built-in ones (not the overrides' 10**6 and 0)
    assert census.series("app.service.CACHE")[1][-1] == 30.0
    assert census.series("app.service.ITEMS")[1][-1] == 3.0
    # AND the library's holder is found through the class attribute's instance, once grown
    values = census.series("fakelib.Logger.manager.loggerDict")[1]
    assert values and values[-1] == 30.0


def test_a_library_holder_is_named_like_a_user_one_and_a_user_holder_wins_a_tie() -> None:
    mods = modules()
    grown = Logger.manager.__dict__["loggerDict"]
    dict.clear(grown)
    census = ContainerCensus(RetentionConfig(), modules=lambda: mods, frame_filter=FF)
    times, values = [], []
    for step in range(20):
        for j in range(10):
            dict.__setitem__(grown, f"app.{step}.{j}", [step])
        census.step(now=float(step))
        times.append(float(step))
        values.append(5000.0 + 8000.0 * step)
    holder = census.attribute(SITE, times, values, 8000.0)
    assert holder is not None
    assert holder.name == "fakelib.Logger.manager.loggerDict"
    assert holder.describe().startswith("fakelib.Logger.manager.loggerDict (dict, +")
    # A user container growing in lockstep explains the same bytes: the user's is named.
    user_cache = mods["app.service"].CACHE
    census2 = ContainerCensus(RetentionConfig(), modules=lambda: mods, frame_filter=FF)
    dict.clear(grown)
    for step in range(20):
        for j in range(10):
            dict.__setitem__(grown, f"b.{step}.{j}", [step])
            dict.__setitem__(user_cache, f"u{step}.{j}", [step])
        census2.step(now=float(step))
    holder2 = census2.attribute(SITE, times, values, 8000.0)
    assert holder2 is not None and holder2.name == "app.service.CACHE"


def test_real_stdlib_holders_are_reached_within_the_step_budget() -> None:
    import logging
    import time

    census = ContainerCensus(
        RetentionConfig(step_budget_s=0.05), frame_filter=FrameFilter.default()
    )
    worst = 0.0
    for step in range(12):
        for j in range(40):
            logging.getLogger(f"leaktrace-test.census.{step}.{j}")
        # CPU time of this thread: the work a step does (a busy machine may deschedule it).
        started = time.thread_time()
        census.step(now=float(step))
        worst = max(worst, time.thread_time() - started)
    values = census.series("logging.Logger.manager.loggerDict")[1]
    assert len(values) >= 4 and values[-1] - values[0] >= 40 * 4
    # The 50 ms budget bounds a step's work (one module may overrun it a little: it is not split)
    assert worst < 0.15, worst


def test_an_alias_of_the_main_module_is_measured_once_under_the_main_name() -> None:
    main = fake_module("__main__", "/app/service.py", CACHE=[1, 2, 3])
    main.__spec__ = None
    mods = {"__main__": main, "__mp_main__": main}
    census = ContainerCensus(RetentionConfig(), modules=lambda: mods, frame_filter=FF)
    census.step(now=1.0)
    assert census.series("service.CACHE")[1] == (3.0,)
    assert census.series("__mp_main__.CACHE") == ((), ())


def test_a_prometheus_metric_s_label_children_are_a_holder() -> None:
    from prometheus_client import CollectorRegistry, Counter

    requests = Counter("app_requests", "Requests by path", ["path"], registry=CollectorRegistry())
    user = fake_module("app.metrics", "/app/metrics.py", REQUESTS=requests)
    mods = {"app.metrics": user}
    census = ContainerCensus(RetentionConfig(), modules=lambda: mods, frame_filter=FF)
    times, values = [], []
    for step in range(12):
        for j in range(20):
            requests.labels(path=f"/orders/{step}-{j}").inc()  # a raw path as a label: unbounded
        census.step(now=float(step))
        times.append(float(step))
        values.append(1000.0 + 6000.0 * step)
    holder = census.attribute(SITE, times, values, 6000.0)
    assert holder is not None and holder.name == "app.metrics.REQUESTS._metrics"
    assert holder.describe().startswith("app.metrics.REQUESTS._metrics (dict, +220 entries")
