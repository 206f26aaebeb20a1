"""Leak analysis: heap snapshots in, verdicts out.

- `trend`: Mann-Kendall / Theil-Sen and the leak-vs-plateau classifier (pure).
- `callpath`: what "the call path" of an allocation is (first user frames).
- `analyzer`: `LeakAnalyzer` / `analyze()`: bounded per-path series -> `Report` (pure);
  `path_totals` sums one snapshot per call path, `paths` and `series` hold its state.
- `retention`: `ContainerCensus`: which container holds a suspect (budgeted steps), over
  `candidates` (what it measures), `holder_names` and `attribution` (the pure fit).
- `hunter`: `Hunter`: the thread that drives the above and publishes, through
  `suspect_metrics` (the Prometheus collector) and `verdicts` (logs and spans).
- `tracemalloc_source`: `TracemallocSource`, the fallback snapshot source (no trace ids).
- `handoff`: the report file between a hunted child and `leaktrace hunt`.
"""

from leaktrace.analysis.analyzer import AnalyzerConfig, LeakAnalyzer, analyze
from leaktrace.analysis.callpath import FrameFilter
from leaktrace.analysis.handoff import LEAKTRACE_HUNT_REPORT, read_report, write_report
from leaktrace.analysis.hunter import Hunter, HunterConfig
from leaktrace.analysis.model import LEAK, NO_LEAK, Holder, Report, Suspect
from leaktrace.analysis.retention import ContainerCensus, RetentionConfig
from leaktrace.analysis.tracemalloc_source import TracemallocSource
from leaktrace.analysis.trend import Shape, TrendConfig, classify

__all__ = [
    "LEAK",
    "LEAKTRACE_HUNT_REPORT",
    "NO_LEAK",
    "AnalyzerConfig",
    "ContainerCensus",
    "FrameFilter",
    "Holder",
    "Hunter",
    "HunterConfig",
    "LeakAnalyzer",
    "Report",
    "RetentionConfig",
    "Shape",
    "Suspect",
    "TracemallocSource",
    "TrendConfig",
    "analyze",
    "classify",
    "read_report",
    "write_report",
]
