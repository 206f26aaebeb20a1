"""Dashboard 1, "Memory leak hunt": from a growing RSS down to the call path and its traces."""

from __future__ import annotations

from .panels import (
    CPU,
    HEAP_INUSE_SPACE,
    SERVICE_REGEX,
    Grid,
    Json,
    dashboard,
    dashboard_links,
    endpoint_variable,
    explore_traces_link,
    flamegraph,
    logs,
    loki,
    profile,
    prom,
    regex_unit_override,
    row,
    service_variable,
    stat,
    table,
    timeseries,
    traceql,
    traces,
    unit_override,
)

UID = "leaktrace-leak-hunt"
ENDPOINT_REGEX = "${endpoint:regex}"
SEL = 'job=~"$service"'


def build() -> Json:
    panels: list[Json] = [
        row("Memory", 0),
        timeseries(
            "Resident memory (RSS)",
            Grid(0, 1, 8, 8),
            [
                prom(
                    f"max by (job, instance) (process_resident_memory_bytes{{{SEL}}})",
                    "{{job}} {{instance}}",
                ),
                prom(
                    f"max by (job) (job:memory_limit_bytes:configured{{{SEL}}})",
                    "{{job}} limit",
                    "B",
                ),
            ],
            unit="bytes",
            minimum=0,
            description="Resident set size of each process, with the memory limit the alerts use.",
            overrides=[regex_unit_override(".* limit", "bytes")],
        ),
        timeseries(
            "Live heap (sampled)",
            Grid(8, 1, 8, 8),
            [
                prom(
                    f"sum by (job, instance) (leaktrace_heap_live_bytes{{{SEL}}})",
                    "{{job}} {{instance}}",
                )
            ],
            unit="bytes",
            minimum=0,
            description="Live Python heap estimated by leaktrace's heap sampler. RSS growing while the "
            "live heap is flat points at fragmentation or native memory, not Python objects.",
        ),
        timeseries(
            "Growth rate (15m slope)",
            Grid(16, 1, 8, 8),
            [
                prom(f"job:process_resident_memory_bytes:deriv15m{{{SEL}}}", "{{job}} RSS"),
                prom(f"job:leaktrace_heap_live_bytes:deriv15m{{{SEL}}}", "{{job}} live heap", "B"),
            ],
            unit="binBps",
            description="Least-squares slope of RSS and live heap over 15 minutes. The "
            "MemoryGrowthSustained alert fires above 10 KiB/s for 30 minutes.",
            thresholds=[(None, "green"), (10240, "red")],
            threshold_style="line",
        ),
        stat(
            "Time to OOM",
            Grid(0, 9, 8, 5),
            [
                prom(
                    f"min by (job) (job:process_resident_memory_bytes:seconds_to_limit{{{SEL}}})",
                    "{{job}}",
                )
            ],
            unit="s",
            thresholds=[(None, "red"), (4 * 3600, "orange"), (24 * 3600, "green")],
            description="Time until RSS reaches the limit at the current 15-minute growth rate. "
            "Empty for services that do not grow.",
        ),
        stat(
            "Fitted bytes per watched entry",
            Grid(8, 9, 8, 5),
            [
                prom(
                    f"max by (job) (deriv(process_resident_memory_bytes{{{SEL}}}[$__range]))"
                    f" / on (job) (sum by (job) (deriv(leaktrace_watched_entries{{{SEL}}}[$__range])) > 0)",
                    "{{job}}",
                    instant=True,
                )
            ],
            unit="bytes",
            decimals=0,
            description="Slope of RSS over the slope of the watched containers' entry count, both "
            "fitted over the dashboard's time range: the bytes each new entry costs. "
            "Only services whose containers grow have a value.",
        ),
        stat(
            "Sampled bytes per entry",
            Grid(16, 9, 8, 5),
            [
                prom(
                    f"sum by (job, container) (leaktrace_watched_bytes{{{SEL}}})"
                    f" / sum by (job, container) (leaktrace_watched_entries{{{SEL}}} > 0)",
                    "{{job}} {{container}}",
                    instant=True,
                )
            ],
            unit="bytes",
            decimals=0,
            description="leaktrace's sampled size estimate of each watched container divided by its "
            "length; compare with the fitted value to see how much memory the entries "
            "retain beyond their own size.",
        ),
        row("Containers and resources", 14),
        timeseries(
            "Watched container entries against RSS",
            Grid(0, 15, 12, 8),
            [
                prom(
                    f"sum by (job, container) (leaktrace_watched_entries{{{SEL}}})",
                    "{{job}} {{container}} entries",
                ),
                prom(f"max by (job) (process_resident_memory_bytes{{{SEL}}})", "{{job}} RSS", "B"),
            ],
            unit="short",
            minimum=0,
            description="len() of each container the service watches (left axis) and its RSS (right "
            "axis). Entries and RSS rising together name the container that leaks.",
            overrides=[regex_unit_override(".* RSS", "bytes", right_axis=True)],
        ),
        timeseries(
            "Threads and open file descriptors",
            Grid(12, 15, 12, 8),
            [
                prom(
                    f"sum by (job, instance) (leaktrace_threads{{{SEL}}})",
                    "{{job}} {{instance}} threads",
                ),
                prom(
                    f"sum by (job, instance) (process_open_fds{{{SEL}}})",
                    "{{job}} {{instance}} open fds",
                    "B",
                ),
            ],
            unit="short",
            minimum=0,
            description="Leaked threads or sockets grow memory too, and fail differently (too many "
            "open files).",
        ),
        row("Requests", 23),
        timeseries(
            "Request duration (p50, p95) with exemplars",
            Grid(0, 24, 16, 8),
            [
                prom(
                    "histogram_quantile(0.95, sum by (le, job) (rate("
                    f"http_server_request_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                    "{{job}} p95",
                    exemplar=True,
                ),
                prom(
                    "histogram_quantile(0.5, sum by (le, job) (rate("
                    f"http_server_request_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                    "{{job}} p50",
                    "B",
                ),
            ],
            unit="s",
            minimum=0,
            description="Exemplar dots carry the trace_id of a request in that bucket: click one to "
            "open its trace in Tempo.",
        ),
        timeseries(
            "Request rate by route",
            Grid(16, 24, 8, 8),
            [
                prom(
                    "sum by (job, http_route) (rate("
                    f"http_server_request_duration_seconds_count{{{SEL}}}[$__rate_interval]))",
                    "{{job}} {{http_route}}",
                )
            ],
            unit="reqps",
            minimum=0,
            description="Requests per second; a leak that tracks a route's rate names the route.",
        ),
        row("Leak suspects", 32),
        table(
            "Leak suspects (leaktrace)",
            Grid(0, 33, 14, 8),
            [
                prom(
                    f"leaktrace_leak_suspect_growth_bytes_per_second{{{SEL}}}",
                    instant=True,
                    table=True,
                ),
                prom(
                    f"leaktrace_leak_suspect_retained_bytes{{{SEL}}}",
                    "",
                    "B",
                    instant=True,
                    table=True,
                ),
            ],
            unit="bytes",
            description="Allocation call paths whose retained memory grows, as ranked by leaktrace's "
            "hunter, with the object holding them. Click a row for the service's traces "
            "over this time range.",
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {
                            "Time": True,
                            "__name__": True,
                            "instance": True,
                            "track": True,
                        },
                        "indexByName": {
                            "job": 0,
                            "rank": 1,
                            "call_path": 2,
                            "holder": 3,
                            "Value #A": 4,
                            "Value #B": 5,
                        },
                        "renameByName": {"Value #A": "growth", "Value #B": "retained"},
                    },
                },
            ],
            overrides=[
                unit_override("growth", "binBps"),
                unit_override("retained", "bytes"),
                {
                    "matcher": {"id": "byName", "options": "call_path"},
                    "properties": [
                        {
                            "id": "links",
                            "value": [
                                explore_traces_link(
                                    "Traces of ${__data.fields.job} in this time range",
                                    '{resource.service.name="${__data.fields.job}"}',
                                )
                            ],
                        }
                    ],
                },
            ],
        ),
        table(
            "Bytes left per request, by endpoint",
            Grid(14, 33, 10, 8),
            [
                prom(
                    f"leaktrace_leak_suspect_endpoint_bytes_per_request{{{SEL}}}",
                    instant=True,
                    table=True,
                ),
                prom(
                    f"leaktrace_leak_suspect_endpoint_retained_bytes{{{SEL}}}",
                    "",
                    "B",
                    instant=True,
                    table=True,
                ),
            ],
            unit="bytes",
            description="For each top suspect, the endpoints (local root span names) whose requests "
            "left its memory behind: live bytes per ended request of that endpoint, and "
            "their total. The endpoint variable filters the heap flame graph to them.",
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {
                            "Time": True,
                            "__name__": True,
                            "instance": True,
                            "track": True,
                        },
                        "indexByName": {
                            "job": 0,
                            "rank": 1,
                            "call_path": 2,
                            "endpoint": 3,
                            "Value #A": 4,
                            "Value #B": 5,
                        },
                        "renameByName": {"Value #A": "per request", "Value #B": "retained"},
                    },
                },
            ],
            overrides=[unit_override("per request", "bytes"), unit_override("retained", "bytes")],
            sort_by="per request",
        ),
        row("Profiles and traces", 41),
        flamegraph(
            "Heap flame graph (inuse_space)",
            Grid(0, 42, 12, 12),
            [
                profile(
                    HEAP_INUSE_SPACE,
                    f'{{service_name=~"{SERVICE_REGEX}", span_name=~"{ENDPOINT_REGEX}"}}',
                )
            ],
            description="Live heap by allocating call stack for the selected services, endpoints (the "
            "`span_name` label: the allocating request's local root span) and time range "
            "(leaktrace heap profiler, a snapshot pushed to Pyroscope every 15 s). Pyroscope "
            "adds up every snapshot in the range, so the total is the live heap times the "
            "number of snapshots (240 per hour): read the stacks' shares, not the total.",
        ),
        flamegraph(
            "CPU flame graph",
            Grid(12, 42, 12, 12),
            [profile(CPU, f'{{service_name=~"{SERVICE_REGEX}"}}')],
            description="CPU time by call stack (pyroscope-io), for the same services and range.",
        ),
        traces(
            "Slowest recent traces",
            Grid(0, 54, 24, 8),
            [traceql(f'{{resource.service.name=~"{SERVICE_REGEX}"}}')],
            description="TraceQL search in Tempo; each trace id opens the trace, whose spans link to "
            "their logs, metrics and profiles. A span's heap profile adds up the live-heap "
            "snapshots (one every 15 s) in Grafana's window around the span, and memory the "
            "span still holds is in every snapshot after it: the embedded flame graph "
            '(span ± 30 s) shows about 2× the bytes it holds, "Profiles for this span" '
            "(span ± 60 s) about 4×. Memory freed before the next snapshot does not show.",
        ),
        logs(
            "Recent logs (with trace links)",
            Grid(0, 62, 24, 10),
            [loki(f'{{service_name=~"{SERVICE_REGEX}"}}')],
            description="Service logs shipped over OTLP to Loki; the trace_id field links to Tempo.",
        ),
        # Prefork services (downstream runs under gunicorn -w 2): Prometheus finds each process
        # through HTTP SD and labels it `pid`; statically scraped services have no pid.
        row("Workers (prefork services)", 72),
        timeseries(
            "Resident memory per worker",
            Grid(0, 73, 12, 8),
            [
                prom(
                    f'max by (job, pid) (process_resident_memory_bytes{{{SEL}, pid!=""}})',
                    "{{job}} pid {{pid}}",
                )
            ],
            unit="bytes",
            minimum=0,
            description="RSS of each process of a prefork service (gunicorn's master and each "
            "worker), one series per pid: a leak in the workers grows their lines, "
            "not the master's. A worker replaced by gunicorn shows up as a new pid.",
        ),
        timeseries(
            "Live heap per worker (sampled)",
            Grid(12, 73, 12, 8),
            [
                prom(
                    f'sum by (job, pid) (leaktrace_heap_live_bytes{{{SEL}, pid!=""}})',
                    "{{job}} pid {{pid}}",
                )
            ],
            unit="bytes",
            minimum=0,
            description="Live Python heap of each process of a prefork service, from its own heap "
            "sampler (every worker samples its own memory from the fork on).",
        ),
    ]
    return dashboard(
        UID,
        "Memory leak hunt",
        panels,
        description="Per-service memory, its growth and time to OOM, watched containers, leak "
        "suspects, heap flame graph, exemplars, traces and logs.",
        tags=["leaktrace", "memory"],
        variables=[service_variable(), endpoint_variable()],
        links=dashboard_links(),
    )
