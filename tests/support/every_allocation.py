"""Child program for tests/unit/test_heap_every_allocation.py: runs one scenario with the heap
sampler sampling every allocation (sample_bytes=1), then prints one JSON line of what it saw.

    python every_allocation.py SCENARIO [SCALE]

`LT_NATIVE_SO` points at another build of the native module (the ASan/UBSan one). Each
scenario is where an allocator hook can break CPython's invariants: it must end with exit 0 and
with samples taken, and the attribution scenarios check the ids the samples carry.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import decimal
import gc
import importlib.util
import json
import os
import sys
import threading
import traceback
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any

from leaktrace.profiling.heap import HeapProfiler
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

SCALE = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0


def n(count: int) -> int:
    return max(1, int(count * SCALE))


def native_module() -> ModuleType | None:
    path = os.environ.get("LT_NATIVE_SO")
    if not path:
        return None
    spec = importlib.util.spec_from_file_location("leaktrace.profiling._heapsampler", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


provider = TracerProvider()
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("every-allocation")
report: dict[str, Any] = {}


def span_ids() -> tuple[int, int]:
    sc = trace.get_current_span().get_span_context()
    return sc.trace_id, sc.span_id


# --- scenarios -----------------------------------------------------------------------------------
def contextvars_churn() -> None:
    others = [contextvars.ContextVar(f"other{i}") for i in range(6)]
    for var in others[:3]:
        var.set("present")
    for i in range(n(4000)):
        tok = others[i % 6].set([i, str(i)])
        with tracer.start_as_current_span("outer"):
            with tracer.start_as_current_span("inner"):
                x = [str(j) for j in range(8)]
            others[(i + 1) % 6].set(x)
        others[i % 6].reset(tok)  # a reset to "no value" deletes from the HAMT
    # the reproduction, verbatim in shape
    other = contextvars.ContextVar("other")
    other.set("present")
    for _ in range(n(4000)):
        with tracer.start_as_current_span("s"):
            x = [str(j) for j in range(20)]


def context_run_and_tasks() -> None:
    def in_context(i: int) -> None:
        with tracer.start_as_current_span(f"run{i}"):
            keep.append([str(i)] * 4)

    keep: list[object] = []
    for i in range(n(1500)):
        contextvars.copy_context().run(in_context, i)
        if len(keep) > 200:
            del keep[:100]

    right = wrong = 0

    async def task(i: int) -> None:
        nonlocal right, wrong
        with tracer.start_as_current_span(f"task{i}"):
            for j in range(n(150)):
                await asyncio.sleep(0)
                tid, sid = span_ids()
                got = prof_native().current_span()
                if got == (tid, sid):
                    right += 1
                else:
                    wrong += 1
                keep.append({"j": j, "s": str(j)})

    async def main() -> None:
        await asyncio.gather(*(task(i) for i in range(8)))

    asyncio.run(main())
    report["hook_reads_right_span"] = right / max(1, right + wrong)


def exceptions_through_spans() -> None:
    def deep(k: int) -> None:
        with tracer.start_as_current_span(f"d{k}"):
            if k == 0:
                sys._getframe()  # a frame object made while spans unwind
                raise ValueError("bottom")
            deep(k - 1)

    for i in range(n(800)):
        try:
            deep(i % 6)
        except ValueError as exc:
            traceback.format_exception(exc)
            exc.__traceback__ = None


class Finalized:
    def __init__(self, keep: list[object]) -> None:
        self.keep = keep
        self.cycle = self

    def __del__(self) -> None:
        with tracer.start_as_current_span("finalizer"):
            self.keep.append(["finalized", str(id(self))])


def finalizers_and_weakrefs() -> None:
    keep: list[object] = []

    class Target:
        pass

    for i in range(n(2000)):
        Finalized(keep)
        t = Target()
        weakref.ref(t, lambda _r, i=i: keep.append({"weakref": i}))
        del t
        if i % 100 == 0:
            gc.collect()
        if len(keep) > 500:
            del keep[:250]


def threads_and_gc() -> None:
    stop = threading.Event()

    def collector() -> None:
        while not stop.is_set():
            gc.collect()

    def short_lived(i: int) -> None:
        with tracer.start_as_current_span(f"thread{i}"):
            junk = [{"i": j} for j in range(50)]
            junk.append(junk)  # a cycle for the collector thread

    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    for i in range(n(300)):
        t = threading.Thread(target=short_lived, args=(i,))
        t.start()
        t.join()
    stop.set()
    gc_thread.join()


def fork_children() -> None:
    stop = threading.Event()

    def allocate() -> None:
        with tracer.start_as_current_span("background"):
            while not stop.is_set():
                _ = [str(i) for i in range(30)]

    bg = threading.Thread(target=allocate)
    bg.start()
    statuses = []
    for _ in range(n(40)):
        with tracer.start_as_current_span("forking"):
            pid = os.fork()
            if pid == 0:
                with tracer.start_as_current_span("child"):
                    _ = [bytearray(64) for _ in range(300)]
                os._exit(0)
            statuses.append(os.waitpid(pid, 0)[1])
    stop.set()
    bg.join()
    report["children_ok"] = sum(1 for s in statuses if s == 0) == len(statuses)


def greenlets() -> None:
    import gevent

    def worker(i: int) -> None:
        for j in range(n(50)):
            with tracer.start_as_current_span(f"g{i}.{j}"):
                _ = [str(k) for k in range(10)]
                gevent.sleep(0)

    gevent.joinall([gevent.spawn(worker, i) for i in range(n(200))])


def libraries() -> None:
    import numpy as np
    import pandas as pd
    from flask import Flask

    for _ in range(n(60)):
        with tracer.start_as_current_span("numpy"), np.errstate(divide="ignore", invalid="ignore"):
            a = np.random.rand(200, 20)
            (a / (a - a)).sum()
    frame = pd.DataFrame(np.random.rand(500, 8), columns=list("abcdefgh"))
    frame["k"] = np.arange(500) % 7
    for _ in range(n(6)):
        with tracer.start_as_current_span("pandas"):
            frame.describe()
            frame.groupby("k").agg(["mean", "max"])
    for i in range(n(300)):
        with tracer.start_as_current_span("decimal"), decimal.localcontext() as ctx:
            ctx.prec = 10 + i % 5
            sum(decimal.Decimal(j) / 7 for j in range(20))
    app = Flask("every-allocation")

    @app.get("/item/<int:i>")
    def item(i: int) -> dict[str, object]:
        with tracer.start_as_current_span("handler"):
            return {"i": i, "rows": [str(k) for k in range(20)]}

    client = app.test_client()
    for i in range(n(150)):
        assert client.get(f"/item/{i}").status_code == 200


def shutdown_while_sampling() -> None:
    def forever() -> None:
        with tracer.start_as_current_span("daemon"):
            while True:
                _ = [str(i) for i in range(30)]

    for _ in range(3):
        threading.Thread(target=forever, daemon=True).start()
    _ = [str(i) for i in range(n(20000))]
    # no stop(): the interpreter finalizes with the hook installed and daemon threads allocating


SCENARIOS: dict[str, Callable[[], None]] = {
    "contextvars": contextvars_churn,
    "context_run_and_tasks": context_run_and_tasks,
    "exceptions": exceptions_through_spans,
    "finalizers_and_weakrefs": finalizers_and_weakrefs,
    "threads_and_gc": threads_and_gc,
    "fork": fork_children,
    "greenlets": greenlets,
    "libraries": libraries,
    "shutdown": shutdown_while_sampling,
}

_prof: list[HeapProfiler] = []


def prof_native() -> Any:
    return _prof[0]._native


def main() -> None:
    name = sys.argv[1]
    if name == "greenlets":
        from gevent import monkey

        monkey.patch_all()
    prof = HeapProfiler(
        sample_bytes=1, max_tracked=1 << 17, max_stacks=4096, native=native_module()
    )
    assert prof.start(), "sampler did not start"
    _prof.append(prof)
    SCENARIOS[name]()
    stats = prof.stats()
    report.update(scenario=name, sampled=stats["sampled"], unattributed=stats["unattributed"])
    if name == "shutdown":
        # the harsher case: not even the atexit stop(), so the hook stays installed through
        # finalization while daemon threads allocate
        atexit.unregister(prof.stop)
    else:
        prof.snapshot(reset_alloc=True)
        prof.stop()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
