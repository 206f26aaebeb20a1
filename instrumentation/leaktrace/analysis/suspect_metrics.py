"""The hunter's Prometheus view: top-K leak suspects of its current report.

A custom collector, read at scrape time, so a suspect that goes away leaves no stale series;
ranks 1..K only and labels truncated, so cardinality stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from leaktrace.analysis.model import Report


class SuspectCollector:
    """prometheus_client custom collector over the hunter's current report."""

    def __init__(
        self,
        report: Callable[[], Report],
        top_k: int,
        label_max_len: int,
        *,
        endpoints_per_suspect: int = 3,
    ) -> None:
        self._report = report
        self._k = top_k
        self._max = label_max_len
        self._e = endpoints_per_suspect

    def describe(self) -> Iterator[Any]:
        return iter(self._families(None))

    def collect(self) -> Iterator[Any]:
        return iter(self._families(self._report()))

    def _families(self, report: Report | None) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

        labels = ["rank", "call_path", "holder"]
        growth = GaugeMetricFamily(
            "leaktrace_leak_suspect_growth_bytes_per_second",
            "Growth rate of the live heap on a leak suspect's call path (top-K by rate).",
            labels=labels,
        )
        retained = GaugeMetricFamily(
            "leaktrace_leak_suspect_retained_bytes",
            "Live bytes on a leak suspect's call path (top-K).",
            labels=labels,
        )
        count = GaugeMetricFamily("leaktrace_leak_suspects", "Number of call paths judged to leak.")
        ep_labels = ["rank", "call_path", "endpoint"]
        per_request = GaugeMetricFamily(
            "leaktrace_leak_suspect_endpoint_bytes_per_request",
            "Live bytes a top-K suspect keeps per ended request of an endpoint (local root span name).",
            labels=ep_labels,
        )
        ep_retained = GaugeMetricFamily(
            "leaktrace_leak_suspect_endpoint_retained_bytes",
            "Live bytes on a top-K suspect's path left behind by ended requests of an endpoint.",
            labels=ep_labels,
        )
        telemetry = GaugeMetricFamily(
            "leaktrace_hunt_telemetry_bytes",
            "Sampled live bytes that are telemetry's own (export queues, leaktrace): never a suspect.",
        )
        info = InfoMetricFamily(
            "leaktrace_leak_suspect",
            "Where a top-K leak suspect allocates and what holds it.",
            labels=["rank", "call_path", "function", "file", "line", "holder"],
        )
        if report is not None:
            for rank, s in enumerate(report.suspects[: self._k], 1):
                cut = self._cut
                values = [str(rank), cut(s.call_path), cut(s.holder.name if s.holder else "")]
                growth.add_metric(values, s.growth_bytes_per_s)
                retained.add_metric(values, float(s.retained_bytes))
                f = s.frames[0] if s.frames else None
                info.add_metric(
                    [
                        str(rank),
                        values[1],
                        cut(f.function if f else ""),
                        cut(f.file if f else ""),
                        str(f.line if f else 0),
                        values[2],
                    ],
                    {},
                )
                for e in s.endpoints[: self._e]:
                    ep_values = [str(rank), values[1], cut(e.name or "(no request)")]
                    ep_retained.add_metric(ep_values, e.retained_bytes)
                    if e.requests > 0:
                        per_request.add_metric(ep_values, e.bytes_per_request)
            count.add_metric([], float(len(report.suspects)))
            telemetry.add_metric([], float(report.telemetry_bytes))
        return [growth, retained, count, info, per_request, ep_retained, telemetry]

    def _cut(self, value: str) -> str:
        return value if len(value) <= self._max else "…" + value[-(self._max - 1) :]
