"""The report file a hunted child writes and `leaktrace hunt` reads.

Handshake: the parent sets LEAKTRACE_HUNT_ENABLED=true and LEAKTRACE_HUNT_REPORT=<path>
in the child's environment. The child's hunter rewrites <path> atomically after every
analysis and once more on shutdown, so even a child killed with SIGKILL leaves its last
complete report (never a torn file) behind.

A child that cannot hunt (no heap sampler, and the tracemalloc fallback not opted into) writes
a refusal there instead, `{"refused": "<why>"}`, so the parent can stop it and say why at once
rather than wait out the run for a report that will never come.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from leaktrace._atomic import write_json_atomic
from leaktrace.analysis.model import Report

#: Env var naming the JSON file the hunted process keeps up to date.
from leaktrace.config import LEAKTRACE_HUNT_REPORT as LEAKTRACE_HUNT_REPORT  # re-exported

_PREFIX = ".leaktrace-report-"  # the temporary file beside the report while it is written


def write_report(path: str, report: Report, *, process: Mapping[str, Any] | None = None) -> None:
    """Write `report.to_json_dict()` to `path` atomically (temp file in the same dir + rename),
    with `process` (the writer's pid and service.instance.id) when given."""
    doc = report.to_json_dict()
    if process:
        doc["process"] = dict(process)
    write_json_atomic(path, doc, prefix=_PREFIX, suffix=".json", indent=2)


def write_refusal(path: str, reason: str) -> None:
    """Say in the handoff file that this process will not hunt, and why (atomically)."""
    write_json_atomic(path, {"refused": reason}, prefix=_PREFIX, suffix=".json", indent=2)


def read_refusal(path: str) -> str | None:
    """The reason a hunted child refused to hunt, or None (no file, a report, or garbage)."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    reason = doc.get("refused") if isinstance(doc, dict) else None
    return reason if isinstance(reason, str) and reason else None


def read_report(path: str) -> dict[str, Any]:
    """The JSON document, validated for the fields the CLI relies on; ValueError if malformed."""
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    if not isinstance(doc, dict) or doc.get("verdict") not in ("leak", "no-leak"):
        raise ValueError(f"{path}: not a leaktrace hunt report")
    if not isinstance(doc.get("suspects"), list):
        raise ValueError(f"{path}: suspects missing")  # a bad file, not a bad call: not a TypeError
    return doc
