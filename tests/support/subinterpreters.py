"""Child program for tests/unit/test_heap_subinterpreters.py (CPython 3.12+): an interpreter with
its own GIL allocates in a thread while the main interpreter samples; the sampler is stopped and
restarted while it runs; start() is tried from a subinterpreter. Prints one JSON line."""

import json
import threading

from leaktrace.profiling.heap import HeapProfiler

try:
    import _interpreters as interpreters  # 3.13

    def create(isolated=True):
        return interpreters.create("isolated" if isolated else "legacy")

    def run(i, code):
        err = interpreters.exec(i, code)  # 3.13 returns the failure instead of raising it
        if err is not None:
            raise RuntimeError(f"{err.type.__name__}: {err.msg}")
except ImportError:
    import _xxsubinterpreters as interpreters  # 3.12

    def create(isolated=True):
        return interpreters.create(isolated=isolated)

    def run(i, code):
        return interpreters.run_string(i, code)


SUB = """
def sub_interpreter_allocates():
    keep = []
    for i in range(300_000):
        keep.append([str(i), {'i': i}])
        if len(keep) > 1000: del keep[:500]
sub_interpreter_allocates()
"""
interp = create()
prof = HeapProfiler(sample_bytes=64)
assert prof.start()
errors = []


def in_sub():
    try:
        run(interp, SUB)
    except Exception as e:  # noqa: BLE001 - the parent test reads it
        errors.append(repr(e))


t = threading.Thread(target=in_sub)
t.start()
keep = []


def main_allocates():
    for i in range(100_000):
        keep.append((str(i), [i]))
        if len(keep) > 1000:
            del keep[:500]


main_allocates()
snap = prof.snapshot()
fns = {f.function for s in snap.samples for f in s.frames}
prof.stop()  # while the subinterpreter may still allocate
restarted = prof.start()
prof.stop()
t.join()
START = "import leaktrace.profiling._heapsampler as h\nh.start(sample_bytes=64, max_frames=8, max_tracked=16, max_stacks=16, context_var=None)"


def start_in(i):
    try:
        run(i, START)
        return "started"
    except Exception as e:  # noqa: BLE001 - the parent test reads it
        return repr(e)


legacy = create(isolated=False)
legacy_start = start_in(legacy)
interpreters.destroy(legacy)
try:
    run(
        interp,
        "import leaktrace.profiling._heapsampler as h\nh.start(sample_bytes=64, max_frames=8, max_tracked=16, max_stacks=16, context_var=None)",
    )
    sub_start = "started"
except Exception as e:  # noqa: BLE001 - the parent test reads it
    sub_start = repr(e)
interpreters.destroy(interp)
print(
    json.dumps(
        {
            "main_sampled": "main_allocates" in fns,
            "sub_sampled": "sub_interpreter_allocates" in fns,
            "errors": errors,
            "restarted": restarted,
            "sub_start": sub_start,
            "legacy_start": legacy_start,
            "stopped": not prof.running,
        }
    )
)
