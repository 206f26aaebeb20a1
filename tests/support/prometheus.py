"""A real Prometheus for integration tests (pytest plugin).

Starts the Debian ``/usr/bin/prometheus`` binary (override with ``LEAKTRACE_TEST_PROMETHEUS``;
promtool with ``LEAKTRACE_TEST_PROMTOOL``) on a free 127.0.0.1 port, with a config written to a
temporary directory. Tests talk to it through :class:`PrometheusServer`.

Fixtures:
- ``prometheus_bin`` / ``promtool_bin`` (session): paths; the test is skipped when missing.
- ``prometheus_factory`` (function scope) and ``prometheus_module_factory`` (module scope):
  ``factory(config_yaml=None, *, rule_files=None, tsdb_dir=None, extra_flags=())`` starts a
  server and returns it ready; every server a factory started is stopped at its teardown.

Helper: ``backfill_openmetrics(promtool, text, tsdb_dir)`` turns OpenMetrics text with
timestamps into TSDB blocks; start a server with ``tsdb_dir=`` that directory to query them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import pytest

PROMETHEUS_ENV = "LEAKTRACE_TEST_PROMETHEUS"
PROMTOOL_ENV = "LEAKTRACE_TEST_PROMTOOL"
DEFAULT_PROMETHEUS = "/usr/bin/prometheus"
DEFAULT_PROMTOOL = "/usr/bin/promtool"

# A scrape interval of 1s keeps tests that scrape a live target short.
DEFAULT_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
"""

_HTTP_TIMEOUT_S = 10.0
_LOG_TAIL_LINES = 40


class PrometheusError(RuntimeError):
    """Prometheus failed to start, answered with an error, or never produced the expected data."""


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (start-up retries cover the race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class PrometheusServer:
    """One Prometheus process bound to 127.0.0.1, with its config, rules and TSDB in ``workdir``."""

    def __init__(
        self,
        binary: str | os.PathLike[str],
        workdir: Path,
        config_yaml: str | None = None,
        *,
        rule_files: Mapping[str, str] | None = None,
        tsdb_dir: Path | None = None,
        extra_flags: Sequence[str] = (),
        ready_timeout_s: float = 30.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self.binary = str(binary)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_yaml = DEFAULT_CONFIG if config_yaml is None else config_yaml
        self.rule_files = dict(rule_files or {})
        self.tsdb_dir = Path(tsdb_dir) if tsdb_dir is not None else self.workdir / "tsdb"
        self.extra_flags = tuple(extra_flags)
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.log_path = self.workdir / "prometheus.log"
        self.config_path = self.workdir / "prometheus.yml"
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise PrometheusError("Prometheus is not started")
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return _tail(self.log_path, lines)

    def _write_files(self) -> None:
        config = self.config_yaml
        if self.rule_files:
            for name, text in self.rule_files.items():
                (self.workdir / name).write_text(text)
            # Rule file paths resolve relative to the config file's directory.
            if "rule_files:" not in config:
                listed = "".join(f"  - {name}\n" for name in self.rule_files)
                config = config.rstrip("\n") + "\nrule_files:\n" + listed
        self.config_path.write_text(config)
        self.tsdb_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> Self:
        if self._proc is not None:
            raise PrometheusError("Prometheus is already started")
        self._write_files()
        # The port is chosen before Prometheus binds it; another process may take it meanwhile.
        last_error: PrometheusError | None = None
        for _attempt in range(3):
            try:
                self._start_once(free_port())
                return self
            except PrometheusError as exc:
                last_error = exc
                if "address already in use" not in str(exc):
                    raise
        assert last_error is not None
        raise last_error

    def _start_once(self, port: int) -> None:
        self.port = port
        cmd = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.tsdb_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            *self.extra_flags,
        ]
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise PrometheusError(
                    f"Prometheus exited with code {code} during start-up; log tail:\n"
                    + self.log_tail()
                )
            if self._ready():
                return
            time.sleep(0.1)
        self.stop()
        raise PrometheusError(
            f"Prometheus not ready within {self.ready_timeout_s}s; log tail:\n" + self.log_tail()
        )

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as resp:
                return int(resp.status) == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=self.stop_timeout_s)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- HTTP API ----------------------------------------------------------------------------

    def api(self, path: str, params: Mapping[str, str]) -> Any:
        """GET /api/v1/<path>; returns ``data`` or raises PrometheusError with the reason."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            # Prometheus puts errorType/error in the body of its 4xx/5xx answers.
            body = exc.read()
            if not body:
                raise PrometheusError(f"GET {url}: HTTP {exc.code}") from exc
        except (OSError, urllib.error.URLError) as exc:
            raise PrometheusError(
                f"GET {url}: {exc}; Prometheus log tail:\n{self.log_tail()}"
            ) from exc
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise PrometheusError(f"GET {url}: not JSON: {body[:200]!r}") from exc
        if payload.get("status") != "success":
            raise PrometheusError(f"GET {url}: {payload.get('errorType')}: {payload.get('error')}")
        return payload.get("data")

    def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]]:
        """Instant query; the result list (vector or matrix), scalars wrapped as one entry."""
        params = {"query": expr}
        if time is not None:
            params["time"] = f"{time:.3f}"
        data = self.api("query", params)
        result = data.get("result")
        if data.get("resultType") in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        return list(result or [])

    def query_range(
        self, expr: str, start: float, end: float, step: float = 1.0
    ) -> list[dict[str, Any]]:
        data = self.api(
            "query_range",
            {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)},
        )
        return list(data.get("result") or [])

    def query_exemplars(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        data = self.api(
            "query_exemplars", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        )
        return list(data or [])

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool] | None = None,
        timeout: float = 20.0,
        interval: float = 0.25,
    ) -> list[dict[str, Any]]:
        """Poll ``expr`` until it returns data (and ``predicate`` accepts it); bounded by timeout."""
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] | str = "(no query answered)"
        while True:
            try:
                result = self.query(expr)
                if result and (predicate is None or predicate(result)):
                    return result
                last = result
            except PrometheusError as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise PrometheusError(
                    f"{expr!r}: no acceptable result within {timeout}s; last: {last!r}; "
                    f"Prometheus log tail:\n{self.log_tail()}"
                )
            time.sleep(interval)


def sample_value(entry: Mapping[str, Any]) -> float:
    """The float value of one instant-vector entry."""
    return float(entry["value"][1])


def backfill_openmetrics(
    promtool: str | os.PathLike[str], text: str, tsdb_dir: Path, *, timeout_s: float = 60.0
) -> None:
    """Write TSDB blocks for OpenMetrics ``text`` (timestamps in seconds) into ``tsdb_dir``.

    ``# EOF`` is appended when missing, since promtool rejects input without it.
    """
    tsdb_dir = Path(tsdb_dir)
    tsdb_dir.mkdir(parents=True, exist_ok=True)
    if not text.rstrip().endswith("# EOF"):
        text = text.rstrip("\n") + "\n# EOF\n"
    source = tsdb_dir.parent / f"{tsdb_dir.name}.backfill.om"
    source.write_text(text)
    proc = subprocess.run(
        [str(promtool), "tsdb", "create-blocks-from", "openmetrics", str(source), str(tsdb_dir)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise PrometheusError(
            f"promtool create-blocks-from openmetrics failed ({proc.returncode}):\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )


def _binary(env: str, default: str) -> str:
    candidate = os.environ.get(env) or default
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(os.path.basename(candidate))
    if found:
        return found
    pytest.skip(f"{candidate} not found (install the Debian package 'prometheus' or set {env})")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return _binary(PROMETHEUS_ENV, DEFAULT_PROMETHEUS)


@pytest.fixture(scope="session")
def promtool_bin() -> str:
    return _binary(PROMTOOL_ENV, DEFAULT_PROMTOOL)


PrometheusFactory = Callable[..., PrometheusServer]


class _Factory:
    def __init__(self, binary: str, tmp: pytest.TempPathFactory) -> None:
        self._binary = binary
        self._tmp = tmp
        self.servers: list[PrometheusServer] = []

    def __call__(
        self,
        config_yaml: str | None = None,
        *,
        rule_files: Mapping[str, str] | None = None,
        tsdb_dir: Path | None = None,
        extra_flags: Sequence[str] = (),
        ready_timeout_s: float = 30.0,
    ) -> PrometheusServer:
        server = PrometheusServer(
            self._binary,
            self._tmp.mktemp("prometheus"),
            config_yaml,
            rule_files=rule_files,
            tsdb_dir=tsdb_dir,
            extra_flags=extra_flags,
            ready_timeout_s=ready_timeout_s,
        )
        self.servers.append(server)
        return server.start()

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def prometheus_factory(
    prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusFactory]:
    factory = _Factory(prometheus_bin, tmp_path_factory)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def prometheus_module_factory(
    prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusFactory]:
    """Like prometheus_factory, but servers live for the whole test module (start-up is slow)."""
    factory = _Factory(prometheus_bin, tmp_path_factory)
    try:
        yield factory
    finally:
        factory.stop_all()
