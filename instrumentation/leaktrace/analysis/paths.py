"""What the analyzer keeps per call path: a full series for tracked paths, two numbers for
the untracked ones it only watches for growth."""

from __future__ import annotations

from collections.abc import Mapping

from leaktrace.analysis.callpath import CallPathKey
from leaktrace.analysis.series import Series
from leaktrace.profiling.samples import Frame


class TrackedPath:
    """A call path with a full series: its stack, its bytes and the requests that left them."""

    __slots__ = (
        "bytes",
        "departed",
        "endpoint_bytes",
        "first_seen",
        "frames",
        "key",
        "low",
        "objects",
        "raw",
        "trusted_bytes",
    )

    def __init__(self, key: CallPathKey, capacity: int) -> None:
        self.key = key
        self.raw: tuple[Frame, ...] = ()  # the biggest sample's stack, as the source gave it
        self.frames: tuple[Frame, ...] = ()  # ... trimmed to user code, for the report
        # objects are kept in lockstep with bytes (same timestamps) for the report.
        self.bytes = Series(capacity)
        self.objects = Series(capacity)
        # Running count of requests whose samples here were live at one snapshot and gone at
        # the next: the churn the trend test's noise check needs (trend.sampled_growth_z).
        self.departed = Series(capacity)
        self.low = float("inf")  # lowest live bytes seen while tracked
        self.first_seen: dict[int, tuple[float, int]] = {}  # trace id -> (first seen live, span id)
        # Latest snapshot, samples a freelist cannot have served only: bytes left by ended
        # requests per endpoint, and all such bytes (the denominator of each endpoint's share).
        self.endpoint_bytes: dict[str, float] = {}
        self.trusted_bytes = 0.0

    def append(self, t: float, nbytes: float, nobj: float, departed: int = 0) -> None:
        self.bytes.append(t, nbytes)
        self.objects.append(t, nobj)
        self.departed.append(t, self.departed.last + departed)
        self.low = min(self.low, nbytes)

    @property
    def growth(self) -> float:
        """Bytes above its low point: what eviction and promotion compare."""
        return self.bytes.last - self.low


class LightPath:
    """An untracked path: just enough to notice that it grows."""

    __slots__ = ("base", "last", "tick")

    def __init__(self, base: float, tick: int) -> None:
        self.base = base
        self.last = base
        self.tick = tick


def keep_oldest(
    first_seen: dict[int, tuple[float, int]], live: Mapping[int, int], now: float, cap: int
) -> dict[int, tuple[float, int]]:
    """Trace ids live now, with the time each was first seen live; the `cap` oldest kept."""
    out = {tid: first_seen.get(tid, (now, sid)) for tid, sid in live.items()}
    if len(out) > cap:
        out = dict(sorted(out.items(), key=lambda kv: kv[1][0])[:cap])
    return out
