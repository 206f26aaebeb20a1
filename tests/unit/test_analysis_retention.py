"""ContainerCensus: candidates found, the right holder picked, budgets kept, no refs kept."""

from __future__ import annotations

import asyncio
import gc
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from leaktrace.analysis.callpath import FrameFilter
from leaktrace.analysis.model import Holder
from leaktrace.analysis.retention import ContainerCensus, RetentionConfig
from leaktrace.profiling.samples import Frame

FF = FrameFilter(library_prefixes=("/usr/lib/python3.11/",))
SITE = (Frame("remember", "/app/fakeapp.py", 12),)
OTHER_SITE = (Frame("audit", "/app/fakeapp.py", 30),)


class Blob:
    """Weak-referenceable payload so tests can check the census keeps nothing alive."""

    def __init__(self, size: int) -> None:
        self.data = b"x" * size


def fake_module(name: str = "fakeapp") -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__file__ = f"/app/{name}.py"
    exec(  # builds a realistic user module in memory
        """
import functools
SESSIONS = {}
AUDIT = []
STATIC = {"a": 1}
ROUTES = {"login": [], "logout": []}

class Repo:
    cache = {}

class Bus:
    def __init__(self):
        self.listeners = []

BUS = Bus()

def make_recorder():
    history = []
    def record(x):
        history.append(x)
    return record

record = make_recorder()

@functools.lru_cache(maxsize=None)
def render(i):
    return str(i) * 100
""",
        mod.__dict__,
    )
    return mod


def census_for(mod: types.ModuleType, **kw: Any) -> ContainerCensus:
    return ContainerCensus(
        RetentionConfig(**kw.pop("config", {})),
        modules=lambda: {mod.__name__: mod},
        frame_filter=FF,
        **kw,
    )


def grow(census: ContainerCensus, steps: int, action: Callable[[int], None]) -> None:
    for i in range(steps):
        action(i)
        census.step(now=float(i))


def test_census_finds_every_kind_of_candidate() -> None:
    mod = fake_module()
    census = census_for(mod)

    def action(i: int) -> None:
        mod.SESSIONS[i] = 1
        mod.Repo.cache[i] = 1
        mod.BUS.listeners.append(i)
        mod.record(i)
        mod.render(i)
        mod.ROUTES["login"].append(i)

    grow(census, 3, action)
    for name, size in [
        ("fakeapp.SESSIONS", 3),
        ("fakeapp.Repo.cache", 3),
        ("fakeapp.BUS.listeners", 3),
        ("fakeapp.record.<closure>.history", 3),
        ("fakeapp.render", 3),
        ("fakeapp.ROUTES['login']", 3),
        ("fakeapp.STATIC", 1),
    ]:
        times, values = census.series(name)
        assert values and values[-1] == size, name
        assert times[-1] == 2.0


def test_holder_is_the_container_whose_entry_size_explains_the_bytes() -> None:
    # GIVEN two containers growing in lockstep, 10 entries per second each:
    # SESSIONS gains ~2 KB entries, AUDIT gains ~100 B entries.
    mod = fake_module()
    census = census_for(mod)

    def action(i: int) -> None:
        for j in range(10):
            mod.SESSIONS[f"s{i}-{j}"] = b"s" * 2000
            mod.AUDIT.append(b"a" * 60)

    grow(census, 12, action)
    times = [float(i) for i in range(12)]
    big = [5e5 + 10 * 2050 * i for i in range(12)]
    small = [5e5 + 10 * 100 * i for i in range(12)]
    # WHEN the 20 KB/s suspect and the 1 KB/s suspect are attributed
    h_big = census.attribute(SITE, times, big, 20e3)
    h_small = census.attribute(OTHER_SITE, times, small, 1e3)
    # THEN each gets the container whose entries weigh what its bytes per entry say
    assert h_big is not None and h_big.name == "fakeapp.SESSIONS"
    assert h_small is not None and h_small.name == "fakeapp.AUDIT"
    assert h_big.bytes_per_entry == pytest.approx(2050, rel=0.01)
    assert h_big.r_squared > 0.99
    assert h_big.entries_growth == 110 and h_big.span_s == 11.0
    assert h_big.describe() == "fakeapp.SESSIONS (dict, +110 entries in 11 s)"


def test_provenance_beats_size_when_an_object_site_is_known() -> None:
    # GIVEN both containers grow alike and with alike entries, but AUDIT's entries were
    # allocated at the suspect's site
    mod = fake_module()
    sites: dict[int, tuple[Frame, ...]] = {}

    def object_site(obj: object) -> tuple[Frame, ...] | None:
        return sites.get(id(obj))

    census = census_for(mod, object_site=object_site)
    keep: list[Blob] = []

    def action(i: int) -> None:
        for j in range(5):
            a, b = Blob(1000), Blob(1000)
            keep.extend((a, b))
            sites[id(a.data)] = (Frame("x", "/usr/lib/python3.11/json/x.py", 1), *SITE)
            mod.SESSIONS[f"{i}-{j}"] = b
            mod.AUDIT.append(a)

    grow(census, 10, action)
    times = [float(i) for i in range(10)]
    holder = census.attribute(SITE, times, [5 * 1100 * i for i in range(10)], 5500)
    assert holder is not None and holder.name == "fakeapp.AUDIT" and holder.confirmed


def test_a_container_that_stopped_growing_is_not_a_holder() -> None:
    # GIVEN a warm-up cache (grows for 3 steps, then flat) while the suspect keeps growing
    mod = fake_module()
    census = census_for(mod)
    grow(census, 12, lambda i: mod.SESSIONS.update({i: b"x" * 1000}) if i < 3 else None)
    holder = census.attribute(
        SITE, [float(i) for i in range(12)], [1e5 * i for i in range(12)], 1e5
    )
    assert holder is None


def test_lru_cache_and_threads_are_measured_by_count() -> None:
    mod = fake_module()
    census = census_for(mod)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def parked() -> None:
        stop.wait(10)

    def action(i: int) -> None:
        mod.render(i)
        th = threading.Thread(target=parked, daemon=True)
        th.start()
        threads.append(th)

    try:
        grow(census, 6, action)
        label = f"threads running {__name__}.test_lru_cache_and_threads_are_measured_by_count.<locals>.parked"
        assert census.series(label)[1] == (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
        assert census.series("fakeapp.render")[1] == (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
        holder = census.attribute(
            SITE, [float(i) for i in range(6)], [20e3 * i for i in range(6)], 20e3
        )
        assert holder is not None and holder.kind in ("threads", "lru_cache")
    finally:
        stop.set()
        for th in threads:
            th.join(2)


def test_watched_containers_and_tasks_are_candidates() -> None:
    watched: dict[str, object] = {"orders": []}

    async def poll() -> None:
        await asyncio.sleep(3600)

    loop = asyncio.new_event_loop()
    tasks = [loop.create_task(poll()) for _ in range(3)]
    try:
        # asyncio's own Task.get_coro is read, never a method of the task's class
        census = ContainerCensus(
            containers=lambda: watched, tasks=lambda: tasks, modules=dict, frame_filter=FF
        )
        census.step(now=1.0)
        assert census.series("orders")[1] == (0.0,)
        name = f"tasks running {poll.__qualname__}"
        assert census.series(name)[1] == (3.0,)
    finally:
        for t in tasks:
            t.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()


def test_census_keeps_no_reference_to_user_objects() -> None:
    mod = fake_module()
    census = census_for(mod, object_site=lambda o: SITE)
    grow(census, 4, lambda i: mod.SESSIONS.update({i: Blob(100)}))
    ref = weakref.ref(mod.SESSIONS[3])
    mod.SESSIONS.clear()
    gc.collect()
    assert ref() is None


def test_a_step_stops_at_its_budget_and_resumes() -> None:
    mods = {f"m{i}": fake_module(f"m{i}") for i in range(200)}
    census = ContainerCensus(
        RetentionConfig(step_budget_s=0.0), modules=lambda: mods, frame_filter=FF
    )
    steps = 1
    while not census.step(now=float(steps)):
        steps += 1
        assert steps < 1000
    # THEN one item per step (budget 0), and every module was measured once
    assert steps == 204  # threads, tasks, watched, foreign + 200 modules
    assert all(census.series(f"m{i}.SESSIONS")[1] for i in range(200))


def test_library_modules_are_not_candidates() -> None:
    lib = types.ModuleType("somelib")
    lib.__file__ = "/usr/lib/python3.11/somelib.py"
    lib.CACHE = {1: 2}  # type: ignore[attr-defined]
    census = ContainerCensus(modules=lambda: {"somelib": lib}, frame_filter=FF)
    census.step(now=0.0)
    assert census.series("somelib.CACHE") == ((), ())


def test_main_module_is_named_after_its_spec_or_file() -> None:
    main = types.ModuleType("__main__")
    main.__file__ = "/app/tools/cleanup.py"
    main.JOBS = [1]  # type: ignore[attr-defined]
    census = ContainerCensus(modules=lambda: {"__main__": main}, frame_filter=FF)
    census.step(now=0.0)
    assert census.series("cleanup.JOBS")[1] == (1.0,)


def test_holder_description_format() -> None:
    h = Holder("services.leaky.app.SESSION_CACHE", "dict", 3750, 25.2, 2048.0, 0.99)
    assert h.describe() == "services.leaky.app.SESSION_CACHE (dict, +3,750 entries in 25 s)"


def test_candidates_are_capped() -> None:
    mods = {f"m{i}": fake_module(f"m{i}") for i in range(20)}
    census = ContainerCensus(
        RetentionConfig(max_candidates=15), modules=lambda: mods, frame_filter=FF
    )
    while not census.step(now=0.0):
        pass
    assert census.candidates == 15


def test_user_objects_that_raise_do_not_break_the_census() -> None:
    mod = fake_module()

    class Evil(dict):  # type: ignore[type-arg]
        def __len__(self) -> int:
            raise RuntimeError("boom")

    mod.EVIL = Evil()  # type: ignore[attr-defined]
    census = census_for(mod)
    assert census.step(now=0.0)
    assert census.series("fakeapp.SESSIONS")[1] == (0.0,)
    assert census.series("fakeapp.EVIL")[1] == (0.0,)  # size unknown -> 0, not a crash


def test_a_hostile_proxy_global_does_not_hide_the_rest_of_its_module() -> None:
    mod = fake_module()

    class Proxy:
        """Like a request-bound proxy: touching it outside a request raises."""

        @property  # type: ignore[misc]
        def __class__(self) -> type:
            raise RuntimeError("working outside of request context")

        def __getattr__(self, name: str) -> object:
            raise RuntimeError("working outside of request context")

    mod.request = Proxy()  # type: ignore[attr-defined]
    mod.SESSIONS[1] = 1
    census = census_for(mod)
    assert census.step(now=0.0)
    assert census.series("fakeapp.SESSIONS")[1] == (1.0,)
    assert census.series("fakeapp.AUDIT")[1] == (0.0,)


def test_candidates_that_disappear_are_forgotten() -> None:
    mod = fake_module()
    census = census_for(mod)
    census.step(now=0.0)
    assert census.series("fakeapp.AUDIT")[1] == (0.0,)
    del mod.AUDIT
    for i in range(1, 5):
        census.step(now=float(i))
    # THEN after a few full cycles without it, its series is dropped (bounded state)
    assert census.series("fakeapp.AUDIT") == ((), ())
    assert census.series("fakeapp.SESSIONS")[1][-1] == 0.0


def test_real_asyncio_tasks_are_counted_from_another_thread() -> None:
    import asyncio

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    release: list[asyncio.Event] = []

    async def parked_request() -> None:
        await release[0].wait()

    async def main() -> None:
        release.append(asyncio.Event())
        tasks = [asyncio.create_task(parked_request()) for _ in range(7)]
        await asyncio.sleep(0)
        ready.set()
        await asyncio.gather(*tasks)

    runner = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    runner.start()
    try:
        assert ready.wait(5)
        census = ContainerCensus(
            tasks=lambda: asyncio.all_tasks(loop), modules=dict, frame_filter=FF
        )
        census.step(now=0.0)
        assert census.series(f"tasks running {parked_request.__qualname__}")[1] == (7.0,)
    finally:
        loop.call_soon_threadsafe(release[0].set)
        runner.join(5)
        loop.close()


def test_a_watched_container_that_is_a_module_global_is_named_by_the_global() -> None:
    import types

    from leaktrace.analysis.retention import ContainerCensus

    # GIVEN a user module whose global dict is also registered with telemetry.watch("sessions")
    mod = types.ModuleType("shop.app")
    mod.__file__ = "/srv/shop/app.py"
    mod.SESSION_CACHE = {}
    census = ContainerCensus(
        containers=lambda: {"sessions": mod.SESSION_CACHE}, modules=lambda: {"shop.app": mod}
    )
    # WHEN it grows over several census cycles
    for i in range(6):
        mod.SESSION_CACHE.update({f"k{i}-{j}": bytes(100) for j in range(50)})
        census.step(now=float(i))
    # THEN one candidate remains, under the global's qualified name, with the whole history
    names = [n for n in census._candidates if "SESSION_CACHE" in n or n == "sessions"]
    assert names == ["shop.app.SESSION_CACHE"], names
    times, values = census.series("shop.app.SESSION_CACHE")
    assert values[-1] == 300 and len(times) == 6
