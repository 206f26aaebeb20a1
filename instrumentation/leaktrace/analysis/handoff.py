"""The report file a hunted child writes and `leaktrace hunt` reads.

Handshake: the parent sets LEAKTRACE_HUNT_ENABLED=true and LEAKTRACE_HUNT_REPORT=<path>
in the child's environment. The child's hunter rewrites <path> atomically after every
analysis and once more on shutdown, so even a child killed with SIGKILL leaves its last
complete report (never a torn file) behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from leaktrace.analysis.model import Report

#: Env var naming the JSON file the hunted process keeps up to date.
from leaktrace.config import LEAKTRACE_HUNT_REPORT as LEAKTRACE_HUNT_REPORT  # re-exported


def write_report(path: str, report: Report) -> None:
    """Write `report.to_json_dict()` to `path` atomically (temp file in the same dir + rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".leaktrace-report-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(report.to_json_dict(), fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_report(path: str) -> dict[str, Any]:
    """The JSON document, validated for the fields the CLI relies on; ValueError if malformed."""
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    if not isinstance(doc, dict) or doc.get("verdict") not in ("leak", "no-leak"):
        raise ValueError(f"{path}: not a leaktrace hunt report")
    if not isinstance(doc.get("suspects"), list):
        raise ValueError(f"{path}: suspects missing")  # noqa: TRY004 - a bad file, not a bad call
    return doc
