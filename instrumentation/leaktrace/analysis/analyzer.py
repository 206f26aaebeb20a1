"""The leak analyzer: heap snapshots in, a Report out. No threads, no I/O, bounded memory.

Memory bounds (each independent of run time and of the host's allocation pattern):
- at most `max_paths` call paths get a full series; the others (at most
  `max_light_paths`) keep only a baseline and a last value, and an untracked path that
  grows takes the slot of the tracked path that grew least (see `_promote`);
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
from leaktrace.analysis.freelists import freelist_block_sizes
from leaktrace.analysis.model import EndpointShare, Report, Suspect, TimeSeries
from leaktrace.analysis.path_totals import Evidence, sum_by_path
from leaktrace.analysis.paths import LightPath, TrackedPath, keep_oldest
from leaktrace.analysis.series import Series
from leaktrace.analysis.trend import Shape, Trend, TrendConfig, classify, theil_sen
from leaktrace.endpoints import EndpointSource, SpanNameCache
from leaktrace.profiling.samples import Frame, HeapSnapshot


@dataclass(frozen=True, slots=True)
class AnalyzerConfig:
    trend: TrendConfig = field(default_factory=TrendConfig)
    key_depth: int = 2
    max_paths: int = 256  # call paths with a full series (trend-tested)
    max_light_paths: int = 16384  # untracked call paths watched for growth (two numbers each)
    promotions_per_snapshot: int = 8
    max_points: int = 120
    max_frames: int = 16  # frames kept per suspect for the report
    max_traces_per_path: int = 256
    max_reported_traces: int = 50
    min_trace_age_s: float = 1.5  # a trace must stay live this long to count as retained
    max_suspects: int = 10
    key_cache_size: int = 8192
    max_endpoints_per_suspect: int = 10
    # Samples of a freelisted block size are no evidence of which request left them (freelists.py).
    distrust_freelist_sizes: bool = True

    def __post_init__(self) -> None:
        if self.key_depth < 1 or self.max_paths < 1 or self.max_points < 16:
            raise ValueError("key_depth >= 1, max_paths >= 1 and max_points >= 16 are required")


class LeakAnalyzer:
    """Feed it snapshots in time order with `observe`; ask `report()` at any time."""

    def __init__(
        self,
        config: AnalyzerConfig = AnalyzerConfig(),
        *,
        frame_filter: FrameFilter | None = None,
        endpoints: EndpointSource | None = None,
        ambiguous_sizes: frozenset[int] | None = None,
    ) -> None:
        """`endpoints`: span id -> local root span name (leaktrace.endpoints.EndpointTracker);
        `ambiguous_sizes`: block sizes whose trace ids are not evidence (freelists.py)."""
        self._config = config
        self._filter = frame_filter or FrameFilter.default()
        self._endpoints = SpanNameCache(endpoints)
        if ambiguous_sizes is None:
            ambiguous_sizes = (
                freelist_block_sizes() if config.distrust_freelist_sizes else frozenset()
            )
        self._ambiguous = ambiguous_sizes
        self._telemetry_bytes = 0.0
        self._paths: dict[CallPathKey, TrackedPath] = {}
        self._light: dict[CallPathKey, LightPath] = {}
        self._keys: dict[int, tuple[tuple[Frame, ...], CallPathKey]] = {}
        self._total = Series(config.max_points)
        self._rss = Series(config.max_points)
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._snapshots = 0
        self._dropped = 0
        self._interval = 1.0  # mean bytes per sample of the last snapshot

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
        # Keyed by identity: sources hand out the same frames tuple for the same stack
        # tick after tick, and hashing a tuple of frames per sample is the hot spot. The
        # stored tuple guards against a recycled id().
        hit = self._keys.get(id(frames))
        if hit is not None and hit[0] is frames:
            return hit[1]
        if len(self._keys) >= self._config.key_cache_size:
            self._keys.clear()
        key = call_path_key(frames, self._filter, self._config.key_depth)
        self._keys[id(frames)] = (frames, key)
        return key

    def observe(self, snapshot: HeapSnapshot, rss_bytes: float | None = None) -> None:
        t = snapshot.timestamp
        if self._last_t is not None and t <= self._last_t:
            return  # out of order or duplicate: the trend tests need increasing times
        cfg = self._config
        names = self._endpoints
        totals = sum_by_path(snapshot, key_of=self._key, names=names, ambiguous=self._ambiguous)
        agg, best, traces, evidence = totals.totals, totals.stacks, totals.traces, totals.evidence
        telemetry = totals.telemetry_bytes
        names.next_pass()
        self._telemetry_bytes = telemetry
        for key, gone in self._paths.items():
            if key not in agg:
                gone.append(t, 0.0, 0.0, len(gone.first_seen))
                gone.first_seen.clear()
                gone.endpoint_bytes = {}
                gone.trusted_bytes = 0.0
        tick = self._snapshots
        growing_light: list[tuple[float, CallPathKey]] = []
        for key, (nbytes, nobj, _) in agg.items():
            path = self._paths.get(key)
            if path is None:
                light = self._light.get(key)
                if light is None and len(self._paths) < cfg.max_paths:
                    path = self._paths[key] = TrackedPath(key, cfg.max_points)
                else:
                    self._observe_light(key, light, nbytes, tick, growing_light)
                    continue
            self._update(path, best[key], t, nbytes, nobj, traces.get(key, {}), evidence.get(key))
        self._promote(growing_light, agg, best, traces, t, evidence)
        self._total.append(t, snapshot.inuse_bytes)
        if rss_bytes is not None:
            self._rss.append(t, float(rss_bytes))
        if self._first_t is None:
            self._first_t = t
        self._last_t = t
        self._snapshots += 1
        self._dropped = snapshot.dropped
        self._interval = float(snapshot.sample_interval_bytes)

    def _update(
        self,
        path: TrackedPath,
        raw: tuple[Frame, ...],
        t: float,
        nbytes: float,
        nobj: float,
        traces: Mapping[int, int],
        evidence: Evidence | None,
    ) -> None:
        if raw is not path.raw:
            path.raw = raw
            path.frames = user_frames(raw, self._filter)[: self._config.max_frames]
        # A request seen here before and not now: its samples here were all freed. A sample
        # without a trace id, or beyond `max_traces_per_path`, goes uncounted: the noise
        # check then errs towards "growing", as it did before it counted departures.
        departed = sum(1 for tid in path.first_seen if tid not in traces)
        path.append(t, nbytes, nobj, departed)
        path.first_seen = keep_oldest(path.first_seen, traces, t, self._config.max_traces_per_path)
        path.endpoint_bytes, path.trusted_bytes = (
            (evidence[0], evidence[1][0]) if evidence else ({}, 0.0)
        )

    def _observe_light(
        self,
        key: CallPathKey,
        light: LightPath | None,
        nbytes: float,
        tick: int,
        growing: list[tuple[float, CallPathKey]],
    ) -> None:
        if light is None:
            if len(self._light) >= self._config.max_light_paths:
                # Forget the tenth that grew least: amortized, and never the growers.
                keep = sorted(
                    self._light.items(), key=lambda kv: kv[1].last - kv[1].base, reverse=True
                )
                self._light = dict(keep[: self._config.max_light_paths * 9 // 10])
            self._light[key] = LightPath(nbytes, tick)
            return
        if light.tick != tick - 1:
            light.base = 0.0  # it was absent (nothing live) in between
        light.base = min(light.base, nbytes)
        light.last = nbytes
        light.tick = tick
        if nbytes > light.base:
            growing.append((nbytes - light.base, key))

    def _promote(
        self,
        growing: list[tuple[float, CallPathKey]],
        agg: Mapping[CallPathKey, list[float]],
        best: Mapping[CallPathKey, tuple[Frame, ...]],
        traces: Mapping[CallPathKey, Mapping[int, int]],
        t: float,
        evidence: Mapping[CallPathKey, Evidence],
    ) -> None:
        """Swap untracked paths that grow for tracked ones that do not.

        The table is for trend tests, so a slot goes to growth, not to size: a big static
        path (code objects, a startup table) yields to a small one that keeps growing.
        Only paths tracked for `min_points` snapshots can be evicted, so each newcomer
        gets a fair look.
        """
        if not growing:
            return
        growing.sort(key=lambda g: g[0], reverse=True)  # Frame keys do not order
        min_points = self._config.trend.min_points
        for gain, key in growing[: self._config.promotions_per_snapshot]:
            eligible = [p for p in self._paths.values() if len(p.bytes) >= min_points]
            if not eligible:
                return
            victim = min(eligible, key=lambda p: p.growth)
            if victim.growth >= gain:
                return
            del self._paths[victim.key]
            demoted = LightPath(victim.low, self._snapshots)
            demoted.last = victim.bytes.last
            self._light[victim.key] = demoted
            del self._light[key]
            path = self._paths[key] = TrackedPath(key, self._config.max_points)
            nbytes, nobj, _ = agg[key]
            self._update(path, best[key], t, nbytes, nobj, traces.get(key, {}), evidence.get(key))

    def trend(self, key: CallPathKey) -> Trend | None:
        path = self._paths.get(key)
        if path is None:
            return None
        return classify(
            path.bytes.times,
            path.bytes.values,
            self._config.trend,
            sample_interval=self._interval,
            departures=path.departed.values,
            block_bytes=_mean_block(path),
        )

    def report(self) -> Report:
        cfg = self._config
        duration = (
            (self._last_t - self._first_t)
            if self._first_t is not None and self._last_t is not None
            else 0.0
        )
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
            tr = classify(
                series.times,
                series.values,
                cfg.trend,
                sample_interval=self._interval,
                departures=path.departed.values,
                block_bytes=_mean_block(path),
            )
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
                    retained_series=TimeSeries.of(series.times, series.values),
                    lines=(path.frames[0].line,) if path.frames else (),
                    endpoints=self._endpoint_shares(path),
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
            heap_series=TimeSeries.of(self._total.times, self._total.values),
            rss_series=TimeSeries.of(self._rss.times, self._rss.values),
            telemetry_bytes=self._telemetry_bytes,
        )

    def _endpoint_shares(self, path: TrackedPath) -> tuple[EndpointShare, ...]:
        """Each endpoint's share of the trusted bytes, applied to all the path's live bytes."""
        source = self._endpoints.source
        if not path.endpoint_bytes or path.trusted_bytes <= 0:
            return ()
        requests = source.requests() if source is not None else {}
        scale = path.bytes.last / path.trusted_bytes
        shares = [
            EndpointShare(name, nbytes * scale, int(requests.get(name, 0)) if name else 0)
            for name, nbytes in path.endpoint_bytes.items()
        ]
        shares.sort(key=lambda e: e.retained_bytes, reverse=True)
        return tuple(shares[: self._config.max_endpoints_per_suspect])

    def _retained_traces(self, path: TrackedPath) -> list[tuple[int, int]]:
        """(trace id, span id) of requests whose allocations here stayed live long enough.

        A request's transient allocations are freed when it ends, so they are rarely in a
        snapshot and never for long; what is still live `min_trace_age_s` later was kept.
        """
        if self._last_t is None:
            return []
        cutoff = self._last_t - self._config.min_trace_age_s
        old = sorted((t0, tid, sid) for tid, (t0, sid) in path.first_seen.items() if t0 <= cutoff)
        return [(tid, sid) for _, tid, sid in old[: self._config.max_reported_traces]]


def _mean_block(path: TrackedPath) -> float:
    # Big blocks are sampled all but surely, so the noise check weighs them less (trend.py).
    nobj = path.objects.last
    return path.bytes.last / nobj if nobj > 0 else 0.0


def analyze(
    snapshots: Iterable[HeapSnapshot],
    config: AnalyzerConfig = AnalyzerConfig(),
    *,
    frame_filter: FrameFilter | None = None,
    rss: Sequence[float] | None = None,
    endpoints: EndpointSource | None = None,
) -> Report:
    """One-shot analysis of a recorded run (rss, when given, is aligned with the snapshots).
    Suspects of one function and caller are merged (`grouping.merge_suspects`, no holders)."""
    from leaktrace.analysis.grouping import merge_report

    analyzer = LeakAnalyzer(config, frame_filter=frame_filter, endpoints=endpoints)
    for i, snap in enumerate(snapshots):
        analyzer.observe(snap, rss[i] if rss is not None and i < len(rss) else None)
    return merge_report(analyzer.report())
