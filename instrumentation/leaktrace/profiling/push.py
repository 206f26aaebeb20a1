"""Heap snapshots to pprof, and pprof to Pyroscope.

`snapshot_to_pprof` turns a `HeapSnapshot` into one pprof with the four memory sample types,
each sample labelled with the trace_id/span_id of the allocating span. `PyroscopePusher` sends it
through the push API (default) or /ingest with bounded timeouts; it never raises into the host
and rate-limits its warnings.

Delta semantics: the exporter resets the alloc accumulator at every export, so alloc_* values
are already deltas over (start, timestamp]. On the push API the series therefore carries
`__delta__="false"`, which tells Pyroscope not to compute deltas again (it would otherwise treat
alloc_* as cumulative, as Go's runtime reports them). /ingest sets that label server-side.
"""

from __future__ import annotations

import base64
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .._ratelimit import RateLimitedLogger, RateLimiter
from ..endpoints import EndpointSource, SpanNameCache
from ..unsent import UnsentLedger, reason, where
from .pprof import MEMORY_SAMPLE_TYPES, ProfileBuilder, _int_field, _len_field  # noqa: F401
from .samples import HeapSnapshot

_log = logging.getLogger("leaktrace.profiling.push")

PUSH_PATH = "/push.v1.PusherService/Push"
INGEST_PATH = "/ingest"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.]*$")


def snapshot_to_pprof(
    snapshot: HeapSnapshot, *, compress: bool = True, span_names: Mapping[int, str] | None = None
) -> bytes:
    """Encode a snapshot as a pprof Profile (gzipped unless compress=False).

    Values are rounded weighted estimates; samples whose four values all round to zero are
    left out. time/duration span the alloc window (start, timestamp]. `span_names` maps span
    ids to their request's local root span name (leaktrace.endpoints): samples get a
    `span_name` label, so a flame graph can be filtered by endpoint.
    """
    start = min(snapshot.start, snapshot.timestamp)
    builder = ProfileBuilder(
        sample_types=MEMORY_SAMPLE_TYPES,
        period_type=("space", "bytes"),
        period=int(snapshot.sample_interval_bytes),
        time_nanos=int(start * 1e9),
        duration_nanos=max(0, int((snapshot.timestamp - start) * 1e9)),
    )
    for s in snapshot.samples:
        values = [
            round(s.alloc_objects),
            round(s.alloc_bytes),
            round(s.inuse_objects),
            round(s.inuse_bytes),
        ]
        if not any(values):
            continue
        labels: dict[str, str] = {}
        if s.span_id:
            labels["span_id"] = s.span_id_hex
        if s.trace_id:
            labels["trace_id"] = s.trace_id_hex
        if span_names and s.span_id:
            name = span_names.get(s.span_id)
            if name:
                labels["span_name"] = name
        builder.add(s.frames, values, labels)
    return builder.encode_gzip() if compress else builder.encode()


def encode_push_request(
    series_labels: Mapping[str, str], raw_profile: bytes, sample_id: str
) -> bytes:
    """push.v1.PushRequest{series: [RawProfileSeries{labels, samples: [RawSample]}]} in wire format.

    Field numbers: PushRequest.series=1; RawProfileSeries.labels=1, samples=2;
    types.v1.LabelPair.name=1, value=2; RawSample.raw_profile=1, ID=2.
    """
    body = b""
    for name, value in sorted(series_labels.items()):
        body += _len_field(1, _len_field(1, name.encode()) + _len_field(2, value.encode()))
    body += _len_field(2, _len_field(1, raw_profile) + _len_field(2, sample_id.encode()))
    return _len_field(1, body)


class _Opener(Protocol):
    def __call__(self, request: urllib.request.Request, timeout: float) -> Any: ...


def _default_opener() -> _Opener:
    # Built at the first push, not with the pusher: build_opener() makes an HTTPS handler whose
    # default SSL context loads the system's CA certificates, a third of leaktrace's start-up
    # (0.32 G of 1.07 G instructions on 3.13, bench/callgrind_alloc.py).
    built: list[urllib.request.OpenerDirector] = []

    def open_(request: urllib.request.Request, timeout: float) -> Any:
        if not built:
            built.append(urllib.request.build_opener())
        return built[0].open(request, timeout=timeout)

    return open_


class PyroscopePusher:
    """Sends heap snapshots to Pyroscope. `push()` returns True on a 2xx and never raises."""

    def __init__(
        self,
        server_address: str,
        *,
        api: str = "push",
        timeout_s: float = 5.0,
        auth_token: str = "",
        basic_auth: tuple[str, str] | None = None,
        tenant_id: str = "",
        headers: Mapping[str, str] | None = None,
        opener: _Opener | None = None,
        warn_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        span_names: EndpointSource | None = None,
        ledger: UnsentLedger | None = None,
    ) -> None:
        """`span_names`: span id -> local root span name (EndpointTracker), for the `span_name`
        label on samples."""
        parsed = urllib.parse.urlsplit(server_address)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(
                f"Pyroscope server address must be an http(s) URL, got {server_address!r}"
            )
        if api not in ("push", "ingest"):
            raise ValueError(f"api must be 'push' or 'ingest', got {api!r}")
        if not timeout_s > 0:
            raise ValueError("timeout_s must be > 0")
        self._base = server_address.rstrip("/")
        self.api = api
        self.timeout_s = float(timeout_s)
        self._headers: dict[str, str] = dict(headers or {})
        if auth_token:
            self._headers["Authorization"] = f"Bearer {auth_token}"
        elif basic_auth and basic_auth[0]:
            token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        if tenant_id:
            self._headers["X-Scope-OrgID"] = tenant_id
        self._open: _Opener = opener or _default_opener()
        self._warn = RateLimitedLogger(_log, RateLimiter(warn_interval_s, clock=clock))
        self.sent = 0
        self.failed = 0
        self._span_names = SpanNameCache(span_names)
        self._ledger = ledger

    def push(
        self,
        snapshot: HeapSnapshot,
        *,
        application_name: str,
        labels: Mapping[str, str] | None = None,
    ) -> bool:
        try:
            return self._push(snapshot, application_name, dict(labels or {}))
        except Exception as exc:  # noqa: BLE001 - telemetry must never break the host
            self.failed += 1
            self._unsent(reason(exc))
            self._warn.warning(
                "heap-push",
                "heap profile push to %s failed: %s: %s",
                self._base,
                type(exc).__name__,
                exc,
            )
            return False

    def _push(self, snapshot: HeapSnapshot, app: str, labels: dict[str, str]) -> bool:
        if not app:
            raise ValueError("application_name is empty")
        for key in labels:
            if not _LABEL_NAME.match(key) or key.startswith("__"):
                raise ValueError(f"invalid label name {key!r}")
        # The app name is the service_name; a duplicate service_name label is rejected upstream.
        labels.pop("service_name", None)
        names = self._span_names.names(s.span_id for s in snapshot.samples if s.span_id)
        raw = snapshot_to_pprof(snapshot, span_names=names)
        headers = dict(self._headers)
        if self.api == "push":
            series = {"__name__": "memory", "__delta__": "false", "service_name": app, **labels}
            body = encode_push_request(series, raw, str(uuid.uuid4()))
            url = self._base + PUSH_PATH
            headers["Content-Type"] = "application/proto"
        else:
            tags = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            name = f"{app}{{{tags}}}" if tags else app
            start = min(snapshot.start, snapshot.timestamp)
            query = urllib.parse.urlencode(
                {
                    "name": name,
                    "from": str(int(start)),
                    "until": str(
                        int(snapshot.timestamp)
                        if snapshot.timestamp > int(start)
                        else int(start) + 1
                    ),
                    "format": "pprof",
                    "spyName": "leaktrace",
                }
            )
            url = f"{self._base}{INGEST_PATH}?{query}"
            body = raw
            headers["Content-Type"] = "application/octet-stream"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with self._open(request, self.timeout_s) as resp:
                resp.read(65536)
                status = int(getattr(resp, "status", 200))
        except urllib.error.HTTPError as exc:
            reason = exc.read(512).decode("utf-8", "replace") if exc.fp else ""
            self.failed += 1
            self._unsent(f"HTTP {exc.code}")
            self._warn.warning(
                "heap-push", "Pyroscope rejected heap profile: HTTP %s %s", exc.code, reason.strip()
            )
            return False
        if 200 <= status < 300:
            self.sent += 1
            return True
        self.failed += 1
        self._unsent(f"HTTP {status}")
        self._warn.warning("heap-push", "Pyroscope answered HTTP %s to a heap profile push", status)
        return False

    def _unsent(self, reason: str) -> None:
        if self._ledger is not None:
            self._ledger.add("heap profiles", 1, where(self._base, reason))
