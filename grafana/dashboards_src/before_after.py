"""Dashboard 2, "Before / after": the leaky and the fixed build side by side under one load."""

from __future__ import annotations

from .panels import (
    HEAP_INUSE_SPACE,
    SERVICE_REGEX,
    Grid,
    Json,
    dashboard,
    dashboard_links,
    flamegraph,
    profile,
    prom,
    row,
    service_variable,
    timeseries,
)

UID = "leaktrace-before-after"
SEL = 'job=~"$service"'
# One column per selected service: Grafana repeats the panel for each value of $service.
REPEAT = {"repeat": "service", "repeatDirection": "h", "maxPerRow": 2}


def build() -> Json:
    panels: list[Json] = [
        row("Same load", 0),
        timeseries(
            "Request rate",
            Grid(0, 1, 12, 6),
            [
                prom(
                    "sum by (job) (rate("
                    f"http_server_request_duration_seconds_count{{{SEL}}}[$__rate_interval]))",
                    "{{job}}",
                )
            ],
            unit="reqps",
            minimum=0,
            description="Both builds receive the same load from loadgen: check the rates match "
            "before comparing memory.",
        ),
        timeseries(
            "RSS, overlaid",
            Grid(12, 1, 12, 6),
            [prom(f"max by (job) (process_resident_memory_bytes{{{SEL}}})", "{{job}}")],
            unit="bytes",
            minimum=0,
            description="The leaky build climbs; the fixed one levels off.",
        ),
        row("Side by side ($service)", 7),
        timeseries(
            "RSS: $service",
            Grid(0, 8, 12, 7),
            [
                prom(
                    f"max by (job, instance) (process_resident_memory_bytes{{{SEL}}})",
                    "{{instance}}",
                )
            ],
            unit="bytes",
            minimum=0,
            description="Resident memory of this build.",
            **REPEAT,
        ),
        timeseries(
            "Live heap: $service",
            Grid(0, 15, 12, 7),
            [prom(f"sum by (job, instance) (leaktrace_heap_live_bytes{{{SEL}}})", "{{instance}}")],
            unit="bytes",
            minimum=0,
            description="Sampled live Python heap of this build.",
            **REPEAT,
        ),
        timeseries(
            "Growth rate: $service",
            Grid(0, 22, 12, 7),
            [
                prom(f"job:process_resident_memory_bytes:deriv15m{{{SEL}}}", "RSS"),
                prom(f"job:leaktrace_heap_live_bytes:deriv15m{{{SEL}}}", "live heap", "B"),
            ],
            unit="binBps",
            description="15-minute slopes; near zero for the fixed build.",
            thresholds=[(None, "green"), (10240, "red")],
            threshold_style="line",
            **REPEAT,
        ),
        timeseries(
            "Watched entries: $service",
            Grid(0, 29, 12, 7),
            [prom(f"sum by (container) (leaktrace_watched_entries{{{SEL}}})", "{{container}}")],
            unit="short",
            minimum=0,
            description="len() of the containers this build watches.",
            **REPEAT,
        ),
        timeseries(
            "p95 request duration: $service",
            Grid(0, 36, 12, 7),
            [
                prom(
                    "histogram_quantile(0.95, sum by (le) (rate("
                    f"http_server_request_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                    "p95",
                    exemplar=True,
                )
            ],
            unit="s",
            minimum=0,
            description="Latency of this build, with trace exemplars.",
            **REPEAT,
        ),
        flamegraph(
            "Heap flame graph: $service",
            Grid(0, 43, 12, 12),
            [profile(HEAP_INUSE_SPACE, f'{{service_name=~"{SERVICE_REGEX}"}}')],
            description="Live heap by allocating stack for this build.",
            **REPEAT,
        ),
    ]
    return dashboard(
        UID,
        "Before / after: leaky vs fixed",
        panels,
        description="The leaky and the fixed service under the same load, one column each.",
        tags=["leaktrace", "memory"],
        variables=[service_variable(default=("leaky", "fixed"), include_all=False)],
        links=dashboard_links(),
    )
