"""Small builders for the panel, target and variable dicts of Grafana's dashboard JSON (v1,
schemaVersion 42). Pure functions returning fresh dicts; no Grafana SDK dependency."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 42

PROMETHEUS: dict[str, str] = {"type": "prometheus", "uid": "prometheus"}
LOKI: dict[str, str] = {"type": "loki", "uid": "loki"}
TEMPO: dict[str, str] = {"type": "tempo", "uid": "tempo"}
PYROSCOPE: dict[str, str] = {"type": "grafana-pyroscope-datasource", "uid": "pyroscope"}

#: Profile types (Pyroscope ids). The heap one is what leaktrace's heap profiler pushes.
HEAP_INUSE_SPACE = "memory:inuse_space:bytes:space:bytes"
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"

#: The template variable every dashboard has; it holds Prometheus `job` values (= service name).
SERVICE_VAR = "service"
#: Multi-value aware forms of $service for the non-Prometheus datasources.
SERVICE_REGEX = "${service:regex}"

Json = dict[str, Any]


@dataclass(frozen=True)
class Grid:
    """A panel's place: Grafana's grid is 24 columns wide."""

    x: int
    y: int
    w: int
    h: int

    def to_json(self) -> Json:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


def prom(
    expr: str,
    legend: str = "",
    ref: str = "A",
    *,
    exemplar: bool = False,
    instant: bool = False,
    table: bool = False,
) -> Json:
    target: Json = {
        "datasource": dict(PROMETHEUS),
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "exemplar": exemplar,
        "editorMode": "code",
    }
    if table:
        target["format"] = "table"
    return target


def loki(expr: str, ref: str = "A") -> Json:
    return {
        "datasource": dict(LOKI),
        "refId": ref,
        "expr": expr,
        "queryType": "range",
        "editorMode": "code",
    }


def traceql(query: str, ref: str = "A", *, limit: int = 20) -> Json:
    return {
        "datasource": dict(TEMPO),
        "refId": ref,
        "queryType": "traceql",
        "query": query,
        "limit": limit,
        "tableType": "traces",
    }


def profile(profile_type: str, label_selector: str, ref: str = "A") -> Json:
    return {
        "datasource": dict(PYROSCOPE),
        "refId": ref,
        "queryType": "profile",
        "profileTypeId": profile_type,
        "labelSelector": label_selector,
        "groupBy": [],
        "spanSelector": [],
    }


def _field_config(
    unit: str,
    *,
    minimum: float | None = None,
    thresholds: Sequence[tuple[float | None, str]] | None = None,
    overrides: Sequence[Json] = (),
    custom: Mapping[str, Any] | None = None,
    links: Sequence[Json] = (),
) -> Json:
    steps = [{"color": color, "value": value} for value, color in (thresholds or [(None, "green")])]
    defaults: Json = {
        "unit": unit,
        "thresholds": {"mode": "absolute", "steps": steps},
        "color": {"mode": "palette-classic"},
    }
    if minimum is not None:
        defaults["min"] = minimum
    if custom:
        defaults["custom"] = dict(custom)
    if links:
        defaults["links"] = list(links)
    return {"defaults": defaults, "overrides": list(overrides)}


def _panel(
    kind: str,
    title: str,
    grid: Grid,
    targets: Sequence[Json],
    description: str,
    datasource: Mapping[str, str],
    field_config: Json | None = None,
    options: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Json:
    panel: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "gridPos": grid.to_json(),
        "datasource": dict(datasource),
        "targets": [dict(t) for t in targets],
        "fieldConfig": field_config or {"defaults": {}, "overrides": []},
        "options": dict(options or {}),
    }
    panel.update(extra)
    return panel


def timeseries(
    title: str,
    grid: Grid,
    targets: Sequence[Json],
    *,
    unit: str,
    description: str,
    minimum: float | None = None,
    thresholds: Sequence[tuple[float | None, str]] | None = None,
    threshold_style: str = "off",
    overrides: Sequence[Json] = (),
    links: Sequence[Json] = (),
    **extra: Any,
) -> Json:
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10,
        "showPoints": "never",
        "thresholdsStyle": {"mode": threshold_style},
    }
    options = {
        "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return _panel(
        "timeseries",
        title,
        grid,
        targets,
        description,
        PROMETHEUS,
        _field_config(
            unit,
            minimum=minimum,
            thresholds=thresholds,
            overrides=overrides,
            custom=custom,
            links=links,
        ),
        options,
        **extra,
    )


def stat(
    title: str,
    grid: Grid,
    targets: Sequence[Json],
    *,
    unit: str,
    description: str,
    thresholds: Sequence[tuple[float | None, str]] | None = None,
    decimals: int | None = None,
    **extra: Any,
) -> Json:
    field_config = _field_config(unit, thresholds=thresholds)
    if decimals is not None:
        field_config["defaults"]["decimals"] = decimals
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "area",
        "textMode": "value_and_name",
    }
    return _panel(
        "stat", title, grid, targets, description, PROMETHEUS, field_config, options, **extra
    )


def table(
    title: str,
    grid: Grid,
    targets: Sequence[Json],
    *,
    unit: str,
    description: str,
    overrides: Sequence[Json] = (),
    transformations: Sequence[Json] = (),
    sort_by: str = "growth",
    **extra: Any,
) -> Json:
    return _panel(
        "table",
        title,
        grid,
        targets,
        description,
        PROMETHEUS,
        _field_config(unit, overrides=overrides),
        {
            "showHeader": True,
            "cellHeight": "sm",
            "sortBy": [{"displayName": sort_by, "desc": True}],
        },
        transformations=list(transformations),
        **extra,
    )


def logs(title: str, grid: Grid, targets: Sequence[Json], *, description: str) -> Json:
    return _panel(
        "logs",
        title,
        grid,
        targets,
        description,
        LOKI,
        None,
        {
            "showTime": True,
            "wrapLogMessage": True,
            "enableLogDetails": True,
            "sortOrder": "Descending",
            "dedupStrategy": "none",
        },
    )


def traces(title: str, grid: Grid, targets: Sequence[Json], *, description: str) -> Json:
    # A TraceQL search renders as a table of traces, each id linking to the trace view.
    return _panel(
        "table",
        title,
        grid,
        targets,
        description,
        TEMPO,
        _field_config("s"),
        {"showHeader": True, "cellHeight": "sm"},
    )


def flamegraph(
    title: str, grid: Grid, targets: Sequence[Json], *, description: str, **extra: Any
) -> Json:
    return _panel("flamegraph", title, grid, targets, description, PYROSCOPE, None, {}, **extra)


def row(title: str, y: int) -> Json:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": Grid(0, y, 24, 1).to_json(),
        "panels": [],
    }


def unit_override(field_name: str, unit: str, *, right_axis: bool = False) -> Json:
    properties: list[Json] = [{"id": "unit", "value": unit}]
    if right_axis:
        properties.append({"id": "custom.axisPlacement", "value": "right"})
    return {"matcher": {"id": "byName", "options": field_name}, "properties": properties}


def regex_unit_override(pattern: str, unit: str, *, right_axis: bool = False) -> Json:
    override = unit_override(pattern, unit, right_axis=right_axis)
    override["matcher"] = {"id": "byRegexp", "options": pattern}
    return override


_GRAFANA_VARIABLE = re.compile(r"(\$\{[^}]*\})")


def _encode_keeping_variables(text: str) -> str:
    """Percent-encode `text` except its `${...}` variables, which Grafana interpolates first."""
    return "".join(
        part if _GRAFANA_VARIABLE.fullmatch(part) else urllib.parse.quote(part, safe="")
        for part in _GRAFANA_VARIABLE.split(text)
    )


def explore_traces_link(title: str, traceql_query: str) -> Json:
    """A data link opening Tempo in Explore with `traceql_query` over the panel's time range."""
    panes = {
        "t": {
            "datasource": TEMPO["uid"],
            "queries": [
                {
                    "refId": "A",
                    "datasource": dict(TEMPO),
                    "queryType": "traceql",
                    "query": traceql_query,
                    "limit": 20,
                }
            ],
            "range": {"from": "${__from}", "to": "${__to}"},
        }
    }
    encoded = _encode_keeping_variables(json.dumps(panes, separators=(",", ":")))
    return {
        "title": title,
        "url": f"/explore?schemaVersion=1&panes={encoded}",
        "targetBlank": False,
    }


def endpoint_variable() -> Json:
    """`$endpoint`: the endpoints (local root span names) the hunters name in their suspects;
    All matches every heap sample, those without a `span_name` label too."""
    query = "label_values(leaktrace_leak_suspect_endpoint_retained_bytes, endpoint)"
    return {
        "name": "endpoint",
        "label": "Endpoint",
        "type": "query",
        "datasource": dict(PROMETHEUS),
        "query": {
            "qryType": 1,
            "query": query,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "regex": "",
        "hide": 0,
        "options": [],
    }


def service_variable(*, default: Sequence[str] = (), include_all: bool = True) -> Json:
    """`$service`: the Prometheus `job` of the leaktrace services (those exporting leaktrace_info)."""
    current: Json
    if default:
        current = {"selected": True, "text": list(default), "value": list(default)}
    else:
        current = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return {
        "name": SERVICE_VAR,
        "label": "Service",
        "type": "query",
        "datasource": dict(PROMETHEUS),
        "query": {
            "qryType": 1,
            "query": "label_values(leaktrace_info, job)",
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "definition": "label_values(leaktrace_info, job)",
        "refresh": 2,
        "multi": True,
        "includeAll": include_all,
        "allValue": ".+",
        "current": current,
        "sort": 1,
        "regex": "",
        "hide": 0,
        "options": [],
    }


def dashboard(
    uid: str,
    title: str,
    panels: Iterable[Json],
    *,
    description: str,
    tags: Sequence[str],
    variables: Sequence[Json],
    time_from: str = "now-1h",
    links: Sequence[Json] = (),
) -> Json:
    numbered = []
    for index, panel in enumerate(panels, start=1):
        numbered.append({"id": index, **panel})
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": list(tags),
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": time_from, "to": "now"},
        "timezone": "browser",
        "templating": {"list": list(variables)},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": list(links),
        "panels": numbered,
    }


def dashboard_links() -> list[Json]:
    return [
        {
            "title": "leaktrace dashboards",
            "type": "dashboards",
            "tags": ["leaktrace"],
            "asDropdown": True,
            "includeVars": True,
            "keepTime": True,
        }
    ]
