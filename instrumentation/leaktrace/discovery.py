"""One Prometheus scrape target per process, found through Prometheus's HTTP service discovery.

A prefork server (gunicorn, uWSGI, Celery prefork, multiprocessing pools) runs one leaktrace
per process, each with its own registry: its RSS, heap, suspects and request histogram (with
trace-id exemplars) are that process's. prometheus-client's multiprocess mode is not used: its
custom collectors do not carry over (leaktrace's gauges are custom collectors), exemplars and
label removal are unsupported there, and gauges cannot carry a pid label.

Instead every process serves its own /metrics and registers `<pid>.json` (its port and
identity) in one directory shared by the process tree. Any of them answers `GET /targets` with
the live registrations as an HTTP SD document, so one fixed address (the port the first process
holds, 9464 by default) gives Prometheus every worker, and a recycled worker's replacement shows
up at the next SD refresh. Registrations of dead pids are skipped and removed.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from ._atomic import write_json_atomic
from ._signals import start_thread

_log = logging.getLogger("leaktrace.metrics")

#: The HTTP SD path every leaktrace /metrics server answers.
TARGETS_PATH = "/targets"

#: Target labels in the SD document: Prometheus keeps `__meta_*` for relabeling only, so the
#: scrape config chooses what becomes a label (docs/prefork.md has the relabel rules).
META_PREFIX = "__meta_leaktrace_"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class Registration:
    pid: int
    port: int
    service_name: str
    service_instance_id: str

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "port": self.port,
            "service_name": self.service_name,
            "service_instance_id": self.service_instance_id,
        }

    @classmethod
    def from_json_dict(cls, doc: Mapping[str, Any]) -> Registration:
        return cls(
            int(doc["pid"]),
            int(doc["port"]),
            str(doc["service_name"]),
            str(doc["service_instance_id"]),
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


class TargetDirectory:
    """The directory the processes of one tree register their /metrics port in."""

    def __init__(
        self, path: str, *, owned: bool = False, alive: Callable[[int], bool] = pid_alive
    ) -> None:
        self.path = path
        self._owner_pid = os.getpid() if owned else None
        self._alive = alive

    @classmethod
    def create(cls) -> TargetDirectory:
        """A private directory, removed by `close()` in the process that made it."""
        return cls(tempfile.mkdtemp(prefix=f"leaktrace-targets-{os.getpid()}-"), owned=True)

    def _file(self, pid: int) -> str:
        return os.path.join(self.path, f"{pid}.json")

    def register(self, registration: Registration) -> None:
        write_json_atomic(
            self._file(registration.pid), registration.to_json_dict(), prefix=".register-"
        )

    def unregister(self, pid: int) -> None:
        try:
            os.unlink(self._file(pid))
        except OSError:
            pass

    def registrations(self) -> list[Registration]:
        """Live registrations, oldest pid first; stale and unreadable files are removed."""
        found: list[Registration] = []
        try:
            names = os.listdir(self.path)
        except OSError:
            return found
        for name in names:
            stem, _, ext = name.partition(".")
            if ext != "json" or not stem.isdigit():
                continue
            path = os.path.join(self.path, name)
            try:
                with open(path, encoding="utf-8") as fh:
                    reg = Registration.from_json_dict(json.load(fh))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if self._alive(reg.pid):
                found.append(reg)
            else:
                self.unregister(reg.pid)
        return sorted(found, key=lambda r: r.pid)

    def close(self) -> None:
        if self._owner_pid is not None and self._owner_pid == os.getpid():
            shutil.rmtree(self.path, ignore_errors=True)


def sd_document(registrations: Iterable[Registration], host: str) -> list[dict[str, Any]]:
    """Prometheus HTTP SD: one target group per process, reachable at `host` (the host part of
    the address the SD request was sent to, so it is the name Prometheus already uses)."""
    return [
        {
            "targets": [f"{host}:{r.port}"],
            "labels": {
                f"{META_PREFIX}pid": str(r.pid),
                f"{META_PREFIX}service_name": r.service_name,
                f"{META_PREFIX}service_instance_id": r.service_instance_id,
            },
        }
        for r in registrations
    ]


def request_host(environ: Mapping[str, Any]) -> str:
    """The host part of the request's Host header (IPv6 keeps its brackets)."""
    raw = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "127.0.0.1")
    if raw.startswith("["):
        return raw[: raw.index("]") + 1] if "]" in raw else raw
    return raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw


def metrics_app(metrics: WSGIApp, directory: Callable[[], TargetDirectory | None]) -> WSGIApp:
    """/targets answered from `directory()`, everything else by prometheus-client's app."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != TARGETS_PATH:
            return metrics(environ, start_response)
        found = directory()
        body = json.dumps(
            sd_document(found.registrations() if found else (), request_host(environ))
        ).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def serve_in_thread(
    host: str, port: int, app: WSGIApp, *, any_port_if_taken: bool = False
) -> tuple[Any, int]:
    """Bind `host:port` (or any free port when it is taken and `any_port_if_taken`) and serve
    `app` from a daemon thread, as prometheus-client's start_http_server does. Raises OSError."""
    from prometheus_client.exposition import ThreadingWSGIServer

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        httpd = make_server(host, port, app, Server, handler_class=_QuietHandler)
    except OSError as exc:
        if not (any_port_if_taken and port != 0 and exc.errno == errno.EADDRINUSE):
            raise
        httpd = make_server(host, 0, app, Server, handler_class=_QuietHandler)
    start_thread(httpd.serve_forever, name="leaktrace-metrics")
    return httpd, int(httpd.server_port)
