"""A Prometheus collector with the figures the refactor benchmark reads from each service.

- ``service_requests_total``: HTTP requests served (scrapes of /metrics excluded).
- ``service_allocated_blocks``: ``sys.getallocatedblocks()``, live blocks of CPython's allocator.
  Its delta divided by the request delta is the net (retained) allocations per request.
- ``service_malloc_in_use_bytes``: glibc ``mallinfo2()`` in-use bytes (arena + mmap). A live-heap
  fallback when leaktrace's heap sampler is off; it does not see pymalloc's own arenas.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.common.web import RequestCounter


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def glibc_malloc_in_use() -> Callable[[], int] | None:
    """A reader of glibc's in-use bytes, or None off glibc (musl, macOS) or before glibc 2.33."""
    try:
        # The symbols already loaded (libc among them): ctypes.util.find_library("c") would run
        # /sbin/ldconfig in a child process each time an app is built.
        libc = ctypes.CDLL(None)
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _Mallinfo2
    fn.argtypes = []

    def read() -> int:
        info = fn()
        return int(info.uordblks + info.hblkhd)

    return read


class ServiceStatsCollector(Collector):
    def __init__(
        self, counter: RequestCounter, *, malloc_in_use: Callable[[], int] | None = None
    ) -> None:
        self._counter = counter
        self._malloc_in_use = malloc_in_use

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "service_requests", "HTTP requests served, /metrics excluded"
        )
        requests.add_metric([], float(self._counter.value))
        yield requests
        yield GaugeMetricFamily(
            "service_allocated_blocks",
            "sys.getallocatedblocks(): live CPython allocator blocks",
            value=float(sys.getallocatedblocks()),
        )
        if self._malloc_in_use is not None:
            yield GaugeMetricFamily(
                "service_malloc_in_use_bytes",
                "glibc mallinfo2 uordblks + hblkhd",
                value=float(self._malloc_in_use()),
            )
