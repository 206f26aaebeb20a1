"""Instant queries against Prometheus' HTTP API: the gate's only reads, each bounded."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .config import DEFAULT_TIMEOUT_S
from .errors import GateQueryError

# Our queries return one sample each; anything this large is not a Prometheus answer.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class PrometheusClient:
    """Instant queries over the HTTP API, each bounded by `timeout_s`.

    `opener` is the transport, so tests can answer from a table instead of a server.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._opener = opener if opener is not None else urllib.request.build_opener()

    def instant(self, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
        """(labels, value) of each element of an instant vector (a scalar has no labels)."""
        params = urllib.parse.urlencode(
            # Prometheus' own evaluation timeout stays below ours so it can explain itself.
            {"query": expr, "time": f"{at:.3f}", "timeout": f"{max(self.timeout_s - 1, 1):g}"}
        )
        url = f"{self.base_url}/api/v1/query?{params}"
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        status, body = self._fetch(request)
        return parse_query_answer(expr, status, body)

    def _fetch(self, request: urllib.request.Request) -> tuple[int, bytes]:
        try:
            with self._opener.open(request, timeout=self.timeout_s) as resp:
                return int(resp.status), resp.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            # 4xx/5xx from Prometheus carry a JSON body with the reason.
            try:
                body = exc.read(MAX_RESPONSE_BYTES + 1)
            except OSError:
                body = b""
            return int(exc.code), body
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise GateQueryError(
                "unreachable",
                f"Prometheus unreachable at {self.base_url}: {reason} "
                f"(timeout {self.timeout_s:g}s)",
            ) from exc


def parse_query_answer(expr: str, status: int, body: bytes) -> list[tuple[dict[str, str], float]]:
    """The instant vector in an HTTP answer to `expr`, or a GateQueryError saying what is wrong."""
    if len(body) > MAX_RESPONSE_BYTES:
        raise GateQueryError(
            "error", f"Prometheus answer to {expr!r} exceeds {MAX_RESPONSE_BYTES} bytes"
        )
    try:
        payload = json.loads(body)
    except ValueError:
        snippet = body[:120].decode("utf-8", "replace")
        raise GateQueryError(
            "error", f"Prometheus answered HTTP {status} with a body that is not JSON: {snippet!r}"
        ) from None
    if not isinstance(payload, dict):
        raise GateQueryError("error", f"Prometheus answered HTTP {status} with unexpected JSON")
    if payload.get("status") != "success" or status >= 400:
        raise GateQueryError(
            "error",
            f"Prometheus returned an error (HTTP {status}) for {expr!r}: "
            f"{payload.get('errorType', '?')}: {payload.get('error', 'no reason given')}",
        )
    data: Any = payload.get("data")
    try:
        kind = data["resultType"]
        result = data["result"]
        if kind == "scalar":
            return [({}, float(result[1]))]
        if kind != "vector":
            raise GateQueryError(
                "error", f"Prometheus answered a {kind} for {expr!r}, not a vector"
            )
        return [(dict(item["metric"]), float(item["value"][1])) for item in result]
    except (TypeError, KeyError, IndexError, ValueError):
        raise GateQueryError("error", f"Prometheus answered malformed data for {expr!r}") from None
