"""Call paths that grow by exactly the same amount in a tick (issue 13).

The hunter thread on CPython 3.13 died with TypeError("'<' not supported between instances of
'Frame' and 'Frame'") and `leaktrace hunt` reported "no leak found after 0.0 s": the analyzer
sorted (gain, call path) pairs, and equal gains fell through to comparing the call paths, tuples
of Frames, which do not order. The tracemalloc fallback hits it first: it gives exact byte
counts, so two paths allocating the same objects per request tie every tick.
"""

from __future__ import annotations

import random

from leaktrace.analysis.analyzer import AnalyzerConfig, LeakAnalyzer
from leaktrace.analysis.callpath import FrameFilter
from leaktrace.analysis.trend import TrendConfig
from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot

FF = FrameFilter(library_prefixes=("/venv/site-packages/",))
GEO = (Frame("load", "/app/geo.py", 3), Frame("<module>", "/app/main.py", 1))
TEMPLATES = (Frame("compile", "/app/templates.py", 9), Frame("<module>", "/app/main.py", 2))
TWIN_A = (Frame("remember", "/app/sessions.py", 12), Frame("login", "/app/routes.py", 40))
TWIN_B = (Frame("remember", "/app/sessions.py", 12), Frame("signup", "/app/routes.py", 52))


def _sample(frames: tuple[Frame, ...], nbytes: float) -> HeapSample:
    return HeapSample(frames, 1.0, nbytes, 1.0, nbytes)


def test_equal_growth_on_untracked_paths_neither_crashes_nor_hides_the_leaks() -> None:
    # GIVEN a full table of tracked paths (two static start-up tables) and two paths outside it
    # that grow in lockstep, by the same bytes every tick
    analyzer = LeakAnalyzer(
        AnalyzerConfig(max_paths=2, trend=TrendConfig(min_points=8)), frame_filter=FF
    )
    rnd = random.Random(13)
    # WHEN a run's worth of snapshots goes by (100 KB/s each, give or take a request)
    for i in range(40):
        grown = 1e3 + 50e3 * i + rnd.uniform(0, 13e3)
        analyzer.observe(
            HeapSnapshot(
                timestamp=0.5 * i,
                start=0.0,
                sample_interval_bytes=1,
                samples=(
                    _sample(GEO, 5e6),
                    _sample(TEMPLATES, 3e6),
                    _sample(TWIN_A, grown),
                    _sample(TWIN_B, grown),
                ),
            )
        )
    # THEN the tie was ordered by growth alone: both twins took the static paths' slots once
    # those had had their fair look, and both are reported at their rate
    assert analyzer.snapshots == 40
    report = analyzer.report()
    assert report.verdict == "leak"
    assert sorted(s.frames[1].function for s in report.suspects) == ["login", "signup"]
    assert all(80e3 < s.growth_bytes_per_s < 120e3 for s in report.suspects)
