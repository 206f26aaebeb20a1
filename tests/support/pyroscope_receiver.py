"""An in-process Pyroscope ingestion server for wire-level tests and benchmarks.

Speaks the two ingestion APIs Pyroscope 2.x serves (see docs/pyroscope-protocol.md for the
facts checked against pyroscope-io 1.4 and the grafana/pyroscope handlers):

* ``POST /push.v1.PusherService/Push`` (Connect unary): ``application/proto`` body, optionally
  ``Content-Encoding: gzip`` (pyroscope-io 1.4 always gzips it), or ``application/json`` with
  base64 ``rawProfile``. Body is ``PushRequest{series: [{labels: [{name, value}],
  samples: [{raw_profile, ID}]}]}``; each raw_profile is a pprof, gzipped or not.
* ``POST /ingest?name=app{k=v}&from=&until=&format=&sampleRate=&spyName=``: either a raw body
  (``format=pprof``) or a ``multipart/form-data`` body with file fields ``profile``,
  optional ``prev_profile`` and ``sample_type_config`` (JSON).

Every received pprof is decoded with ``leaktrace.profiling.pprof.decode_profile`` and stored as a
frozen ``ReceivedProfile``. The server can answer with errors or hang, to test client failure
handling, and keeps memory bounded.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import json
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, Self, TypeVar

from leaktrace.profiling.pprof import DecodedProfile, decode_profile, iter_fields

from tests.support.otlp_receiver import (
    LOOPBACK,
    BoundedRecords,
    ReceiverHTTPServer,
    TrackedHandler,
    decompress,
    poll_until,
)

__all__ = [
    "INGEST_PATH",
    "PUSH_PATH",
    "PushSeries",
    "PyroscopeReceiver",
    "ReceivedProfile",
    "ReceivedRequest",
    "parse_app_name",
    "parse_push_request",
]

T = TypeVar("T")
PUSH_PATH = "/push.v1.PusherService/Push"
INGEST_PATH = "/ingest"
# Suffixes the /ingest handler strips from the app name to find the profile type
# (grafana/pyroscope pkg/ingester/pyroscope/ingest_adapter.go convertMetadata).
_INGEST_TYPE_SUFFIXES = frozenset(
    {
        "cpu", "wall", "itimer", "inuse_objects", "inuse_space", "alloc_objects", "alloc_space",
        "goroutines", "mutex_count", "mutex_duration", "block_count", "block_duration",
        "lock_count", "lock_duration", "live", "exceptions", "bytes",
    }
)  # fmt: skip
# format= values the server's switch handles before looking at a multipart Content-Type.
_EXPLICIT_INGEST_FORMATS = frozenset({"pprof", "jfr", "speedscope", "trie", "tree", "lines"})


@dataclass(frozen=True)
class ReceivedProfile:
    api: str  # "push" or "ingest"
    app_name: str  # push: the service_name label; ingest: the name before "{" (type suffix kept)
    labels: Mapping[str, str]  # includes __name__ and service_name
    from_ts: float | None  # unix seconds: ingest from=, or pprof time_nanos for push
    until_ts: float | None  # ingest until=, or time + duration for push
    format: str  # "pprof" for push; ingest: the format= value, "multipart", or "groups" (server default)
    spy_name: str  # ingest spyName=, or the pyroscope-rs user-agent spy for push ("" if unknown)
    sample_rate: int | None
    profile_id: str  # push sample ID ("" for ingest)
    raw: bytes  # pprof bytes exactly as received (gzipped or not)
    profile: DecodedProfile | None  # None when the bytes are not a pprof
    decode_error: str  # why ``profile`` is None ("" when decoded or not a pprof format)
    sample_type_config: Mapping[str, Any] | None  # ingest multipart sample_type_config
    prev_raw: bytes | None  # ingest multipart prev_profile
    tenant_id: str  # X-Scope-OrgID header ("" when absent)

    @property
    def sample_type_names(self) -> tuple[str, ...]:
        return tuple(t for t, _ in self.profile.sample_types) if self.profile else ()

    @property
    def is_memory(self) -> bool:
        return self.labels.get("__name__") == "memory" or "inuse_space" in self.sample_type_names

    @property
    def is_cpu(self) -> bool:
        return self.labels.get("__name__") == "process_cpu" or "cpu" in self.sample_type_names

    def function_names(self) -> frozenset[str]:
        """Every function that appears in any sample's stack."""
        if self.profile is None:
            return frozenset()
        return frozenset(f.function for s in self.profile.samples for f in s.frames)

    def total(self, sample_type: str) -> int:
        """Sum of one sample type over all samples (0 when the profile lacks it)."""
        if self.profile is None or sample_type not in self.sample_type_names:
            return 0
        return int(self.profile.total(sample_type))

    def value_in(self, function: str, sample_type: str) -> int:
        """Sum of ``sample_type`` over samples whose stack contains ``function``."""
        if self.profile is None or sample_type not in self.sample_type_names:
            return 0
        return sum(
            self.profile.value(s, sample_type)
            for s in self.profile.samples
            if any(f.function == function for f in s.frames)
        )


@dataclass(frozen=True)
class ReceivedRequest:
    """Wire facts of one request, kept even when it was rejected or undecodable."""

    path: str
    query: str
    status: int
    content_type: str
    content_encoding: str
    user_agent: str
    tenant_id: str
    has_authorization: bool
    body_bytes: int
    headers: Mapping[str, str]  # lowercase names; Authorization value redacted


@dataclass(frozen=True)
class PushSeries:
    labels: tuple[tuple[str, str], ...]
    samples: tuple[tuple[bytes, str], ...]  # (raw_profile, ID)


class BadRequest(ValueError):
    """Input the real server would reject with 400."""


# --- protocol helpers (pure) ------------------------------------------------------------------
def parse_push_request(data: bytes) -> list[PushSeries]:
    """Decode a binary push.v1.PushRequest with the hand-written wire reader."""
    series = []
    try:
        for field_no, wire, value in iter_fields(data):
            if field_no != 1 or wire != 2:
                continue
            assert isinstance(value, bytes)
            labels: list[tuple[str, str]] = []
            samples: list[tuple[bytes, str]] = []
            for sf, sw, sv in iter_fields(value):
                if sw != 2:
                    continue
                assert isinstance(sv, bytes)
                if sf == 1:  # LabelPair{name=1, value=2}
                    pair = {f: v for f, w, v in iter_fields(sv) if w == 2}
                    labels.append((_text(pair.get(1, b"")), _text(pair.get(2, b""))))
                elif sf == 2:  # RawSample{raw_profile=1, ID=2}
                    sample = {f: v for f, w, v in iter_fields(sv) if w == 2}
                    raw = sample.get(1, b"")
                    assert isinstance(raw, bytes)
                    samples.append((raw, _text(sample.get(2, b""))))
            series.append(PushSeries(tuple(labels), tuple(samples)))
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"malformed PushRequest: {exc}") from exc
    return series


def parse_push_json(data: bytes) -> list[PushSeries]:
    """Decode the Connect JSON form of PushRequest (rawProfile base64, as in the Pyroscope docs)."""
    try:
        doc = json.loads(data)
        series = []
        for s in doc.get("series") or []:
            labels = tuple(
                (str(lp.get("name", "")), str(lp.get("value", ""))) for lp in s.get("labels") or []
            )
            samples = tuple(
                (
                    base64.b64decode(
                        sm.get("rawProfile") or sm.get("raw_profile") or "", validate=True
                    ),
                    str(sm.get("ID", "")),
                )
                for sm in s.get("samples") or []
            )
            series.append(PushSeries(labels, samples))
        return series
    except (ValueError, AttributeError, TypeError, binascii.Error) as exc:
        raise BadRequest(f"malformed JSON PushRequest: {exc}") from exc


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise TypeError("expected a length-delimited string field")
    return value.decode("utf-8")


def parse_app_name(name: str) -> tuple[str, dict[str, str]]:
    """Split ``app.cpu{k=v,k2=v2}`` into ("app.cpu", {"k": "v", "k2": "v2"}).

    Values may be double-quoted. Raises BadRequest like the server's labelset.Parse.
    """
    name = name.strip()
    if not name:
        raise BadRequest("name: empty application name")
    if "{" not in name:
        return name, {}
    app, _, rest = name.partition("{")
    if not rest.endswith("}"):
        raise BadRequest(f"name: unterminated label set in {name!r}")
    app = app.strip()
    if not app:
        raise BadRequest(f"name: no application name before labels in {name!r}")
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest[:-1].split(","))):
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key:
            raise BadRequest(f"name: bad label {part!r}, want key=value")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        labels[key] = value
    return app, labels


def _ingest_labels(app: str, tags: Mapping[str, str]) -> dict[str, str]:
    labels = dict(tags)
    labels["__name__"] = app
    if "service_name" not in labels:
        base, dot, suffix = app.rpartition(".")
        labels["service_name"] = base if dot and suffix in _INGEST_TYPE_SUFFIXES else app
    return labels


def _parse_time(value: str | None) -> float | None:
    """from/until as unix seconds; accepts s, ms, us or ns integers (by magnitude) or None."""
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None  # relative forms like now-1h are legal on the server; not needed here
    for scale in (1.0, 1e3, 1e6, 1e9):
        if number / scale < 1e11:
            return number / scale
    return number / 1e9


def _decode(raw: bytes) -> tuple[DecodedProfile | None, str]:
    try:
        return decode_profile(raw), ""
    except Exception as exc:  # noqa: BLE001 - any malformed pprof is data to report, not a crash
        return None, f"{type(exc).__name__}: {exc}"


def _multipart_fields(body: bytes, content_type: str) -> dict[str, bytes]:
    # email's MIME parser handles multipart/form-data without the deprecated cgi module.
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise BadRequest("multipart body without parts (boundary missing or wrong?)")
    fields: dict[str, bytes] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload
    return fields


# --- the receiver -----------------------------------------------------------------------------
@dataclass
class _Faults:
    status: int = 0  # 0: answer normally
    failures_left: int = 0  # -1: until recover()
    hang: bool = False


class PyroscopeReceiver:
    """Pyroscope ingestion server on 127.0.0.1:<free port>.

    ``endpoint`` is what ``pyroscope.configure(server_address=...)`` takes. Profiles are decoded
    and stored (newest ``max_profiles`` kept, overflow counted in ``dropped_profiles``); request
    wire facts are kept in ``requests()`` (newest ``max_requests``).
    """

    def __init__(
        self, *, max_profiles: int = 2_000, max_requests: int = 2_000, max_hang_s: float = 30.0
    ) -> None:
        self._profiles: BoundedRecords[ReceivedProfile] = BoundedRecords(max_profiles)
        self._requests: BoundedRecords[ReceivedRequest] = BoundedRecords(max_requests)
        self._lock = threading.Lock()
        self._faults = _Faults()
        self._release = threading.Event()  # set: hanging requests return
        self._max_hang_s = max_hang_s
        self._bytes = 0
        self._server: ReceiverHTTPServer | None = None

    # lifecycle
    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("receiver already started")
        self._release.clear()
        self._server = ReceiverHTTPServer(_make_pyroscope_handler(self))
        self._server.start_background("pyroscope-receiver")
        return self

    def stop(self) -> None:
        self._release.set()  # unblock hung requests so their threads end
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("receiver not running")
        return self._server.port

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # fault injection
    def fail(self, count: int | None = None, *, status: int = 500) -> None:
        """Answer the next ``count`` ingestion requests (all if None) with ``status``."""
        if count is not None and count < 1:
            raise ValueError("count must be >= 1 or None")
        with self._lock:
            self._faults = _Faults(status=status, failures_left=-1 if count is None else count)

    def hang(self) -> None:
        """Hold every ingestion request open (reading its body first) until release()/stop()
        or ``max_hang_s``, then answer 503."""
        with self._lock:
            self._faults.hang = True
        self._release.clear()

    def release(self) -> None:
        with self._lock:
            self._faults.hang = False
        self._release.set()

    def recover(self) -> None:
        self.release()
        with self._lock:
            self._faults = _Faults()

    def _fault_status(self) -> int:
        """0 to accept, else the status to answer with; blocks while hanging."""
        with self._lock:
            hang = self._faults.hang
        if hang:
            self._release.wait(self._max_hang_s)
            return 503
        with self._lock:
            f = self._faults
            if f.status == 0 or f.failures_left == 0:
                return 0
            if f.failures_left > 0:
                f.failures_left -= 1
            return f.status

    # what was received
    def profiles(self) -> tuple[ReceivedProfile, ...]:
        return self._profiles.snapshot()

    def memory_profiles(self) -> list[ReceivedProfile]:
        return [p for p in self.profiles() if p.is_memory]

    def cpu_profiles(self) -> list[ReceivedProfile]:
        return [p for p in self.profiles() if p.is_cpu]

    def requests(self) -> tuple[ReceivedRequest, ...]:
        return self._requests.snapshot()

    @property
    def dropped_profiles(self) -> int:
        return self._profiles.dropped

    @property
    def bytes_received(self) -> int:
        with self._lock:
            return self._bytes

    def clear(self) -> None:
        self._profiles.clear()
        self._requests.clear()
        with self._lock:
            self._bytes = 0

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Poll ``predicate`` (bounded); returns its last value, falsy on timeout."""
        return poll_until(predicate, timeout)

    # request handling (called from handler threads)
    def _note_request(self, info: ReceivedRequest) -> None:
        self._requests.extend((info,))
        with self._lock:
            self._bytes += info.body_bytes

    def _store(self, profiles: list[ReceivedProfile]) -> None:
        self._profiles.extend(profiles)

    def handle_push(
        self, body: bytes, content_type: str, encoding: str, tenant: str, user_agent: str
    ) -> None:
        try:
            data = decompress(body, encoding)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        if content_type in ("application/proto", "application/protobuf", "application/x-protobuf"):
            series = parse_push_request(data)
        elif content_type == "application/json":
            series = parse_push_json(data)
        else:
            raise _Unsupported(
                f"Content-Type {content_type!r} not supported; send application/proto or application/json"
            )
        # pyroscope-rs user agent: "pyroscope-rs/<spy>/<version> reqwest"
        ua_parts = user_agent.split("/")
        spy = ua_parts[1] if len(ua_parts) >= 3 and ua_parts[0] == "pyroscope-rs" else ""
        out = []
        for s in series:
            labels = dict(s.labels)
            for raw, sample_id in s.samples:
                profile, err = _decode(raw)
                start = profile.time_nanos / 1e9 if profile and profile.time_nanos else None
                end = (
                    start + profile.duration_nanos / 1e9 if profile and start is not None else None
                )
                out.append(
                    ReceivedProfile(
                        api="push",
                        app_name=labels.get("service_name", ""),
                        labels=MappingProxyType(labels),
                        from_ts=start,
                        until_ts=end,
                        format="pprof",
                        spy_name=spy,
                        sample_rate=None,
                        profile_id=sample_id,
                        raw=raw,
                        profile=profile,
                        decode_error=err,
                        sample_type_config=None,
                        prev_raw=None,
                        tenant_id=tenant,
                    )
                )
        self._store(out)

    def handle_ingest(
        self,
        query: Mapping[str, str],
        body: bytes,
        full_content_type: str,
        encoding: str,
        tenant: str,
    ) -> None:
        content_type = full_content_type.split(";", 1)[0].strip().lower()
        app, tags = parse_app_name(query.get("name", ""))
        try:
            data = decompress(body, encoding)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        fmt = query.get("format", "")
        config: Mapping[str, Any] | None = None
        prev: bytes | None = None
        # Same precedence as the server's switch: an explicit format wins over a multipart body,
        # so multipart + format=pprof is read as raw pprof there (and fails to decode here too).
        if content_type == "multipart/form-data" and fmt not in _EXPLICIT_INGEST_FORMATS:
            fields = _multipart_fields(data, full_content_type)
            if "profile" not in fields:
                raise BadRequest("multipart body has no 'profile' field")
            raw, prev = fields["profile"], fields.get("prev_profile")
            if "sample_type_config" in fields:
                try:
                    config = MappingProxyType(json.loads(fields["sample_type_config"]))
                except (ValueError, TypeError) as exc:
                    raise BadRequest(f"sample_type_config is not a JSON object: {exc}") from exc
            fmt = "multipart"
        else:
            raw = data
            fmt = fmt or "groups"  # the server's default format: "foo;bar 100" lines
        profile, err = _decode(raw) if fmt in ("pprof", "multipart") else (None, "")
        try:
            sample_rate: int | None = int(query["sampleRate"]) if query.get("sampleRate") else None
        except ValueError:
            sample_rate = None  # the server falls back to its default rate too
        self._store(
            [
                ReceivedProfile(
                    api="ingest",
                    app_name=app,
                    labels=MappingProxyType(_ingest_labels(app, tags)),
                    from_ts=_parse_time(query.get("from")),
                    until_ts=_parse_time(query.get("until")),
                    format=fmt,
                    spy_name=query.get("spyName", ""),
                    sample_rate=sample_rate,
                    profile_id="",
                    raw=raw,
                    profile=profile,
                    decode_error=err,
                    sample_type_config=config,
                    prev_raw=prev,
                    tenant_id=tenant,
                )
            ]
        )


class _Unsupported(ValueError):
    """Content type the server does not speak (415)."""


def _make_pyroscope_handler(receiver: PyroscopeReceiver) -> type[TrackedHandler]:
    class Handler(TrackedHandler):
        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            body = self.read_body()
            if body is None:
                return
            full_ctype = self.headers.get("Content-Type") or ""
            ctype = full_ctype.split(";", 1)[0].strip().lower()
            encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
            tenant = self.headers.get("X-Scope-OrgID") or ""
            status, reason = self._dispatch(url, body, ctype, full_ctype, encoding, tenant)
            headers = {
                k.lower(): ("<redacted>" if k.lower() == "authorization" else v)
                for k, v in self.headers.items()
            }
            receiver._note_request(
                ReceivedRequest(
                    path=url.path,
                    query=url.query,
                    status=status,
                    content_type=full_ctype,
                    content_encoding=encoding,
                    user_agent=self.headers.get("User-Agent") or "",
                    tenant_id=tenant,
                    has_authorization="Authorization" in self.headers,
                    body_bytes=len(body),
                    headers=MappingProxyType(headers),
                )
            )
            if status == 200:
                if url.path == PUSH_PATH:
                    # Connect unary success: an empty PushResponse in the request's codec.
                    json_codec = ctype == "application/json"
                    self.send_bytes(
                        200,
                        b"{}" if json_codec else b"",
                        "application/json" if json_codec else "application/proto",
                    )
                else:
                    self.send_bytes(200, b"", "text/plain; charset=utf-8")
            elif url.path == PUSH_PATH:
                code = {
                    400: "invalid_argument",
                    404: "unimplemented",
                    415: "invalid_argument",
                    503: "unavailable",
                }
                err = json.dumps({"code": code.get(status, "internal"), "message": reason}).encode()
                self.send_bytes(status, err, "application/json")
            else:
                self.send_plain(status, reason)

        def _dispatch(
            self,
            url: urllib.parse.SplitResult,
            body: bytes,
            ctype: str,
            full_ctype: str,
            encoding: str,
            tenant: str,
        ) -> tuple[int, str]:
            if url.path not in (PUSH_PATH, INGEST_PATH):
                return 404, f"unknown path {url.path!r}; use {PUSH_PATH} or {INGEST_PATH}"
            fault = receiver._fault_status()
            if fault:
                return fault, "injected failure (PyroscopeReceiver.fail/hang)"
            try:
                if url.path == PUSH_PATH:
                    receiver.handle_push(
                        body, ctype, encoding, tenant, self.headers.get("User-Agent") or ""
                    )
                else:
                    query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
                    receiver.handle_ingest(query, body, full_ctype, encoding, tenant)
            except _Unsupported as exc:
                return 415, str(exc)
            except BadRequest as exc:
                return 400, str(exc)
            except Exception as exc:  # noqa: BLE001 - a receiver bug must reach the client as a 500
                return 500, f"receiver error: {type(exc).__name__}: {exc}"
            return 200, ""

        def do_GET(self) -> None:
            if urllib.parse.urlsplit(self.path).path == "/ready":
                self.send_plain(200, "ready")
            else:
                self.send_plain(405, "ingestion endpoints accept POST only")

    return Handler
