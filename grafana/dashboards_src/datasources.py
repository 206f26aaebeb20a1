"""Datasource template variables: the portable form of a dashboard.

The builders reference the compose stack's fixed datasource uids (`panels.PROMETHEUS` and
friends). `templated` turns a built dashboard into one that names each datasource through a
`datasource` template variable, so it imports into any Grafana whatever its uids are (the mixin
ships this form). `substitute` sets those variables to concrete uids and drops them: with the
fixed uids it gives back exactly the dashboard compose provisions.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from . import panels

Json = dict[str, Any]

#: Datasource kind -> (plugin type, fixed uid in the compose stack, variable name, label).
KINDS: tuple[tuple[str, str, str, str], ...] = tuple(
    (ref["type"], ref["uid"], f"{ref['uid']}_datasource", label)
    for ref, label in (
        (panels.PROMETHEUS, "Prometheus / Mimir"),
        (panels.LOKI, "Loki"),
        (panels.TEMPO, "Tempo"),
        (panels.PYROSCOPE, "Pyroscope"),
    )
)
#: The uids compose provisions, by variable name: what `substitute` sets for compose.
COMPOSE_UIDS: dict[str, str] = {variable: uid for _, uid, variable, _ in KINDS}

_UID_TO_VARIABLE = {uid: variable for _, uid, variable, _ in KINDS}
_PANES = re.compile(r"([?&]panes=)([^&]*)")


def _variable(plugin_type: str, name: str, label: str) -> Json:
    # `current` is left empty: Grafana then selects the default (or first) datasource of the type.
    return {
        "name": name,
        "label": label,
        "type": "datasource",
        "query": plugin_type,
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
        "includeAll": False,
        "multi": False,
    }


def _retarget(node: Any, mapping: Mapping[str, str]) -> Any:
    """Copy of `node` with every datasource reference's uid (dict or bare string) mapped."""
    if isinstance(node, dict):
        out: Json = {}
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict) and value.get("uid") in mapping:
                out[key] = {**value, "uid": mapping[value["uid"]]}
            elif key == "datasource" and isinstance(value, str) and value in mapping:
                out[key] = mapping[value]
            elif key == "url" and isinstance(value, str) and "panes=" in value:
                out[key] = _retarget_url(value, mapping)
            else:
                out[key] = _retarget(value, mapping)
        return out
    if isinstance(node, list):
        return [_retarget(item, mapping) for item in node]
    return node


def _retarget_url(url: str, mapping: Mapping[str, str]) -> str:
    # Explore links carry their datasource inside the percent-encoded `panes` JSON.
    def repl(match: re.Match[str]) -> str:
        panes = _retarget(json.loads(urllib.parse.unquote(match.group(2))), mapping)
        return match.group(1) + panels._encode_keeping_variables(
            json.dumps(panes, separators=(",", ":"))
        )

    return _PANES.sub(repl, url)


def templated(board: Json) -> Json:
    """`board` with every fixed datasource uid replaced by `${<kind>_datasource}` and those
    variables first in its templating list (later variables query through them)."""
    used = {
        value["uid"]
        for key, value in _walk(board)
        if key == "datasource" and isinstance(value, dict)
    }
    mapping = {uid: f"${{{variable}}}" for uid, variable in _UID_TO_VARIABLE.items()}
    out: Json = _retarget(copy.deepcopy(board), mapping)
    variables = [
        _variable(plugin_type, variable, label)
        for plugin_type, uid, variable, label in KINDS
        if uid in used
    ]
    out["templating"] = {"list": variables + list(out["templating"]["list"])}
    return out


def substitute(board: Json, uids: Mapping[str, str]) -> Json:
    """`board` with each datasource variable in `uids` (name -> uid) set and removed."""
    mapping = {f"${{{name}}}": uid for name, uid in uids.items()}
    out: Json = _retarget(copy.deepcopy(board), mapping)
    out["templating"] = {"list": [v for v in out["templating"]["list"] if v["name"] not in uids]}
    return out


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)
