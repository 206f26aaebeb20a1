"""Links from a report to Grafana: a trace id opens Explore on the Tempo datasource."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass

#: The Tempo datasource uid this repository's Grafana provisions (grafana/provisioning).
DEFAULT_TEMPO_UID = "tempo"


class BadGrafanaURL(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class GrafanaLinks:
    base_url: str
    tempo_uid: str = DEFAULT_TEMPO_UID

    @classmethod
    def parse(cls, url: str, tempo_uid: str = DEFAULT_TEMPO_UID) -> GrafanaLinks:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadGrafanaURL(
                f"expected an http(s) URL such as http://127.0.0.1:3000, got {url!r}"
            )
        if not tempo_uid.strip():
            raise BadGrafanaURL("the Tempo datasource uid is empty")
        # Keep a sub-path (Grafana served under /grafana/), drop query and fragment.
        return cls(f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}", tempo_uid.strip())

    def trace_url(
        self, trace_id: str, *, start_s: float | None = None, end_s: float | None = None
    ) -> str:
        """Explore with the trace id as the TraceQL query (Tempo looks it up as a trace),
        over the run's time range when known (a minute of margin each side)."""
        if start_s is not None and end_s is not None:
            time_range = {
                "from": str(int((start_s - 60) * 1000)),
                "to": str(int((end_s + 60) * 1000)),
            }
        else:
            time_range = {"from": "now-1h", "to": "now"}
        pane = {
            "datasource": self.tempo_uid,
            "queries": [
                {
                    "refId": "A",
                    "datasource": {"type": "tempo", "uid": self.tempo_uid},
                    "queryType": "traceql",
                    "query": trace_id,
                }
            ],
            "range": time_range,
        }
        panes = json.dumps({"leak": pane}, separators=(",", ":"))
        return f"{self.base_url}/explore?schemaVersion=1&panes={urllib.parse.quote(panes, safe='')}"
