"""Dashboard 3, "Canary memory gate": canary/baseline memory ratio against 1.15 and 1.25."""

from __future__ import annotations

from .panels import (
    Grid,
    Json,
    dashboard,
    dashboard_links,
    prom,
    row,
    service_variable,
    stat,
    timeseries,
)

UID = "leaktrace-canary-gate"
SEL = 'job=~"$service"'
PAUSE_AT = 1.15
ROLLBACK_AT = 1.25
GATE_STEPS: list[tuple[float | None, str]] = [
    (None, "green"),
    (PAUSE_AT, "orange"),
    (ROLLBACK_AT, "red"),
]


def build() -> Json:
    panels: list[Json] = [
        row("Gate", 0),
        timeseries(
            "Canary / baseline memory ratio",
            Grid(0, 1, 16, 9),
            [prom(f"job:canary_memory_ratio:1h_7d{{{SEL}}}", "{{job}}")],
            unit="percentunit",
            description="Mean RSS of the canary (track=canary) over 1h divided by the baseline's "
            "(track=stable) mean over 7d. Pause the rollout at 115%, roll back at 125% "
            "(alerts CanaryMemoryPause and CanaryMemoryRollback, and `leaktrace gate`).",
            thresholds=GATE_STEPS,
            threshold_style="line+area",
        ),
        stat(
            "Ratio now",
            Grid(16, 1, 8, 9),
            [prom(f"job:canary_memory_ratio:1h_7d{{{SEL}}}", "{{job}}", instant=True)],
            unit="percentunit",
            decimals=1,
            thresholds=GATE_STEPS,
            description="Green: continue. Orange (>= 115%): pause. Red (>= 125%): roll back.",
        ),
        row("Inputs", 10),
        timeseries(
            "RSS by track",
            Grid(0, 11, 12, 8),
            [
                prom(
                    f"max by (job, track) (process_resident_memory_bytes{{{SEL}}})",
                    "{{job}} {{track}}",
                )
            ],
            unit="bytes",
            minimum=0,
            description="Resident memory of the canary and the baseline processes.",
        ),
        timeseries(
            "Canary 1h mean vs baseline 7d mean",
            Grid(12, 11, 12, 8),
            [
                prom(
                    f"job:process_resident_memory_bytes:canary_avg1h{{{SEL}}}",
                    "{{job}} canary (1h)",
                ),
                prom(
                    f"job:process_resident_memory_bytes:stable_avg7d{{{SEL}}}",
                    "{{job}} baseline (7d)",
                    "B",
                ),
            ],
            unit="bytes",
            minimum=0,
            description="The numerator and denominator of the ratio.",
        ),
    ]
    return dashboard(
        UID,
        "Canary memory gate",
        panels,
        description="Is the canary using more memory than its baseline? Thresholds 1.15 (pause) "
        "and 1.25 (roll back).",
        tags=["leaktrace", "canary"],
        variables=[service_variable()],
        time_from="now-6h",
        links=dashboard_links(),
    )
