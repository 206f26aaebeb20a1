"""Attribution: which measured container best explains a suspect's growing bytes (pure).

A leak's live bytes grow because some container gains entries, so over the same window
bytes(t) ~= a + b * entries(t) fits well (high R^2), with b the bytes each entry retains.
Among the candidates that fit, two independent checks break the tie between containers that
all grow linearly: b against the measured size of recently added entries, and where recently
added entries were allocated (provenance), when that is known.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace

from leaktrace.analysis.callpath import CallPathKey
from leaktrace.analysis.model import Holder, TimeSeries
from leaktrace.analysis.series import Series
from leaktrace.analysis.trend import ols

# Counted, not sized: their entries have no size to check b against.
_UNSIZED_KINDS = frozenset({"lru_cache", "threads", "tasks"})


class Candidate:
    """One measured container: its entry counts over time, and the sizes and allocation sites
    of entries it gained recently."""

    __slots__ = ("entry_sizes", "foreign", "kind", "last_cycle", "name", "series", "sites")

    def __init__(self, name: str, kind: str, capacity: int, foreign: bool = False) -> None:
        self.name = name
        self.kind = kind
        self.foreign = foreign
        self.series = Series(capacity)
        self.entry_sizes: collections.deque[float] = collections.deque(maxlen=16)
        self.sites: collections.deque[tuple[str, int]] = collections.deque(maxlen=32)
        self.last_cycle = 0


def best_holder(
    candidates: Iterable[Candidate],
    site: CallPathKey,
    times: Sequence[float],
    values: Sequence[float],
    *,
    min_entries_growth: int,
    min_r_squared: float,
    foreign_penalty: float,
) -> Holder | None:
    """The candidate that best explains `values` (a suspect's live bytes over `times`).
    A foreign candidate's score is lowered by `foreign_penalty`."""
    if len(times) < 4 or not site:
        return None
    t0 = times[0]
    top = (site[0].file, site[0].line)
    best: tuple[float, Holder, Candidate] | None = None
    for c in candidates:
        ct, cv = c.series.times, c.series.values
        if len(ct) < 3 or ct[-1] <= t0 or cv[-1] - min(cv) < min_entries_growth:
            continue  # cheap rejection first: most candidates never grow
        xs, ys = _align(ct, cv, times, values)
        if len(xs) < 4:
            continue
        growth = xs[-1] - min(xs)
        if growth < min_entries_growth:
            continue
        _, b, r2 = ols(xs, ys)
        if b <= 0 or r2 < min_r_squared:
            continue
        confirmed = top in c.sites
        if c.kind in _UNSIZED_KINDS or not c.entry_sizes:
            consistency = 0.5
        else:
            entry = sorted(c.entry_sizes)[len(c.entry_sizes) // 2]
            consistency = math.exp(-abs(math.log(b / entry))) if entry > 0 else 0.0
        score = (
            r2 + consistency + (2.0 if confirmed else 0.0) - (foreign_penalty if c.foreign else 0.0)
        )
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
