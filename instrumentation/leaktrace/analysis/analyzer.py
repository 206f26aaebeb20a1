"""The leak analyzer: heap snapshots in, a Report out. No threads, no I/O, bounded memory.

Memory bounds (each independent of run time and of the host's allocation pattern):
- at most `max_paths` call paths are tracked; when a new one arrives and the table is
  full, the path with the fewest live bytes is evicted;
- each path keeps at most `max_points` (time, bytes, objects) points; when full, the
  older half is thinned to every other point, so history is kept at a coarser
  resolution while the recent half (what the trend test's "still growing" check reads)
  stays dense;
- each path remembers at most `max_traces_per_path` trace ids, the oldest live ones;
- the call-path key cache holds at most `key_cache_size` stacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from leaktrace.analysis.callpath import CallPathKey, FrameFilter, call_path_key, user_frames
from leaktrace.analysis.model import Report, Suspect
from leaktrace.analysis.trend import Shape, Trend, TrendConfig, classify, theil_sen
from leaktrace.profiling.samples import Frame, HeapSnapshot


@dataclass(frozen=True, slots=True)
class AnalyzerConfig:
    trend: TrendConfig = field(default_factory=TrendConfig)
    key_depth: int = 2
    max_paths: int = 256
    max_points: int = 120
    max_frames: int = 16  # frames kept per suspect for the report
    max_traces_per_path: int = 256
    max_reported_traces: int = 50
    min_trace_age_s: float = 1.5  # a trace must stay live this long to count as retained
    max_suspects: int = 10
    key_cache_size: int = 8192

    def __post_init__(self) -> None:
        if self.key_depth < 1 or self.max_paths < 1 or self.max_points < 16:
            raise ValueError("key_depth >= 1, max_paths >= 1 and max_points >= 16 are required")


class Series:
    """A bounded (t, y) series with history thinning."""

    __slots__ = ("times", "values", "capacity")

    def __init__(self, capacity: int) -> None:
        self.times: list[float] = []
        self.values: list[float] = []
        self.capacity = capacity

    def append(self, t: float, y: float) -> None:
        self.times.append(t)
        self.values.append(y)
        if len(self.times) > self.capacity:
            half = len(self.times) // 2
            self.times[:half] = self.times[:half:2]
            self.values[:half] = self.values[:half:2]

    def __len__(self) -> int:
        return len(self.times)

    @property
    def last(self) -> float:
        return self.values[-1] if self.values else 0.0


class _Path:
    __slots__ = ("key", "frames", "bytes", "objects", "first_seen")

    def __init__(self, key: CallPathKey, frames: tuple[Frame, ...], capacity: int) -> None:
        self.key = key
        self.frames = frames
        # objects are kept in lockstep with bytes (same timestamps) for the report.
        self.bytes = Series(capacity)
        self.objects = Series(capacity)
        self.first_seen: dict[int, tuple[float, int]] = {}  # trace id -> (first seen live, span id)


class LeakAnalyzer:
    """Feed it snapshots in time order with `observe`; ask `report()` at any time."""

    def __init__(self, config: AnalyzerConfig = AnalyzerConfig(), *, frame_filter: FrameFilter | None = None) -> None:
        self._config = config
        self._filter = frame_filter or FrameFilter.default()
        self._paths: dict[CallPathKey, _Path] = {}
        self._keys: dict[tuple[Frame, ...], CallPathKey] = {}
        self._total = Series(config.max_points)
        self._rss = Series(config.max_points)
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._snapshots = 0
        self._dropped = 0

    @property
    def config(self) -> AnalyzerConfig:
        return self._config

    @property
    def snapshots(self) -> int:
        return self._snapshots

    @property
    def tracked_paths(self) -> int:
        return len(self._paths)

    def path_series(self, key: CallPathKey) -> tuple[Sequence[float], Sequence[float]]:
        """(times, live bytes) of one path, oldest first; empty when not tracked."""
        path = self._paths.get(key)
        if path is None:
            return (), ()
        return tuple(path.bytes.times), tuple(path.bytes.values)

    def _key(self, frames: tuple[Frame, ...]) -> CallPathKey:
        key = self._keys.get(frames)
        if key is None:
            if len(self._keys) >= self._config.key_cache_size:
                self._keys.clear()
            key = call_path_key(frames, self._filter, self._config.key_depth)
            self._keys[frames] = key
        return key

    def observe(self, snapshot: HeapSnapshot, rss_bytes: float | None = None) -> None:
        t = snapshot.timestamp
        if self._last_t is not None and t <= self._last_t:
            return  # out of order or duplicate: the trend tests need increasing times
        cfg = self._config
        agg: dict[CallPathKey, list[float]] = {}  # key -> [bytes, objects, best_bytes]
        best: dict[CallPathKey, tuple[Frame, ...]] = {}
        traces: dict[CallPathKey, dict[int, int]] = {}
        for s in snapshot.samples:
            if s.inuse_bytes <= 0:
                continue
            key = self._key(s.frames)
            a = agg.get(key)
            if a is None:
                a = agg[key] = [0.0, 0.0, -1.0]
            a[0] += s.inuse_bytes
            a[1] += s.inuse_objects
            if s.inuse_bytes > a[2]:
                a[2] = s.inuse_bytes
                best[key] = s.frames
            if s.trace_id:
                traces.setdefault(key, {})[s.trace_id] = s.span_id
        for key, path in self._paths.items():
            if key not in agg:
                path.bytes.append(t, 0.0)
                path.objects.append(t, 0.0)
                path.first_seen.clear()
        for key, (nbytes, nobj, _) in agg.items():
            path = self._paths.get(key)
            if path is None:
                if len(self._paths) >= cfg.max_paths:
                    victim = min(self._paths.values(), key=lambda p: p.bytes.last)
                    if victim.bytes.last >= nbytes:
                        continue  # everything tracked is bigger: not worth a slot
                    del self._paths[victim.key]
                frames = user_frames(best[key], self._filter)[: cfg.max_frames]
                path = self._paths[key] = _Path(key, frames, cfg.max_points)
            else:
                path.frames = user_frames(best[key], self._filter)[: cfg.max_frames]
            path.bytes.append(t, nbytes)
            path.objects.append(t, nobj)
            path.first_seen = _keep_oldest(path.first_seen, traces.get(key, {}), t, cfg.max_traces_per_path)
        self._total.append(t, snapshot.inuse_bytes)
        if rss_bytes is not None:
            self._rss.append(t, float(rss_bytes))
        if self._first_t is None:
            self._first_t = t
        self._last_t = t
        self._snapshots += 1
        self._dropped = snapshot.dropped

    def trend(self, key: CallPathKey) -> Trend | None:
        path = self._paths.get(key)
        if path is None:
            return None
        return classify(path.bytes.times, path.bytes.values, self._config.trend)

    def report(self) -> Report:
        cfg = self._config
        duration = (self._last_t - self._first_t) if self._first_t is not None and self._last_t is not None else 0.0
        suspects: list[Suspect] = []
        min_rise = cfg.trend.min_slope * 0.25
        for path in self._paths.values():
            series = path.bytes
            if len(series) < cfg.trend.min_points:
                continue
            span = series.times[-1] - series.times[0]
            # Cheap pre-filter before the O(n^2) tests: most paths are static.
            if series.values[-1] - min(series.values[: max(2, len(series) // 4)]) < min_rise * span:
                continue
            tr = classify(series.times, series.values, cfg.trend)
            if tr.shape is not Shape.GROWING:
                continue
            retained = self._retained_traces(path)
            suspects.append(
                Suspect(
                    frames=path.frames,
                    growth_bytes_per_s=tr.slope,
                    retained_bytes=int(series.last),
                    objects=int(path.objects.last),
                    p_value=tr.p_value,
                    trace_ids=tuple(format(tid, "032x") for tid, _ in retained),
                    span_ids=tuple(format(sid, "016x") for _, sid in retained),
                    key=path.key,
                )
            )
        suspects.sort(key=lambda s: s.growth_bytes_per_s, reverse=True)
        rss = self._rss if len(self._rss) >= 2 else self._total
        rss_slope = theil_sen(rss.times, rss.values)[0] if len(rss) >= 2 else 0.0
        notes: list[str] = []
        if self._dropped:
            notes.append(f"the heap sampler dropped {self._dropped} samples (live table full)")
        return Report(
            duration_s=duration,
            rss_growth_bytes_per_s=rss_slope,
            suspects=tuple(suspects[: cfg.max_suspects]),
            snapshots=self._snapshots,
            notes=tuple(notes),
        )

    def _retained_traces(self, path: _Path) -> list[tuple[int, int]]:
        """(trace id, span id) of requests whose allocations here stayed live long enough.

        A request's transient allocations are freed when it ends, so they are rarely in a
        snapshot and never for long; what is still live `min_trace_age_s` later was kept.
        """
        if self._last_t is None:
            return []
        cutoff = self._last_t - self._config.min_trace_age_s
        old = sorted((t0, tid, sid) for tid, (t0, sid) in path.first_seen.items() if t0 <= cutoff)
        return [(tid, sid) for _, tid, sid in old[: self._config.max_reported_traces]]


def _keep_oldest(
    first_seen: dict[int, tuple[float, int]], live: Mapping[int, int], now: float, cap: int
) -> dict[int, tuple[float, int]]:
    """Trace ids live now, with the time each was first seen live; the `cap` oldest kept."""
    out = {tid: first_seen.get(tid, (now, sid)) for tid, sid in live.items()}
    if len(out) > cap:
        out = dict(sorted(out.items(), key=lambda kv: kv[1][0])[:cap])
    return out


def analyze(
    snapshots: Iterable[HeapSnapshot],
    config: AnalyzerConfig = AnalyzerConfig(),
    *,
    frame_filter: FrameFilter | None = None,
    rss: Sequence[float] | None = None,
) -> Report:
    """One-shot analysis of a recorded run (rss, when given, is aligned with the snapshots)."""
    analyzer = LeakAnalyzer(config, frame_filter=frame_filter)
    for i, snap in enumerate(snapshots):
        analyzer.observe(snap, rss[i] if rss is not None and i < len(rss) else None)
    return analyzer.report()
