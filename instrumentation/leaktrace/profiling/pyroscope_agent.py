"""pyroscope-io (CPU, and memory when leaktrace's own heap sampler is not running).

pyroscope-io is a process-wide native agent: this class is its one owner in a process, started
and stopped by Telemetry, and any failure of it is logged and contained.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from ..setting_groups import PyroscopeConfig

_log = logging.getLogger("leaktrace.profiling")


class PyroscopeProfiler:
    def __init__(
        self,
        config: PyroscopeConfig,
        *,
        memory: bool,
        tags: Mapping[str, str] | None = None,
        agent: Any = None,
    ) -> None:
        """`agent` is the pyroscope module (injectable for tests); imported lazily otherwise."""
        self._config = config
        self._memory = memory
        self._tags = dict(tags or {})
        self._agent = agent
        self.running = False
        self._lock = threading.Lock()

    @property
    def memory(self) -> bool:
        return self._memory

    def set_memory(self, enabled: bool) -> None:
        """Whether pyroscope-io samples the heap too; only before start()."""
        if not self.running:
            self._memory = enabled

    def start(self) -> bool:
        c = self._config
        with self._lock:
            if self.running:
                return True
            try:
                agent = self._agent
                if agent is None:
                    import pyroscope as agent

                    self._agent = agent
                headers = {"Authorization": f"Bearer {c.auth_token}"} if c.auth_token else {}
                ok = agent.configure(
                    application_name=c.application_name,
                    server_address=c.server_address,
                    basic_auth_username=c.basic_auth_username,
                    basic_auth_password=c.basic_auth_password,
                    tenant_id=c.tenant_id,
                    http_headers=headers,
                    sample_rate=c.sample_rate,
                    upload_interval=c.upload_interval_s,
                    tags=self._tags,
                    mem_enabled=self._memory,
                    mem_heap_sample_size=c.heap_sample_bytes,
                    mem_max_nframe=c.heap_max_frames,
                )
            except Exception as exc:  # noqa: BLE001 - the program runs without the CPU profiler
                _log.warning(
                    "leaktrace: the CPU profiler could not start (%r); continuing without it", exc
                )
                return False
            if ok is False:
                _log.warning(
                    "leaktrace: pyroscope-io refused to start; continuing without CPU profiles"
                )
                return False
            self.running = True
            return True

    def stop(self) -> None:
        with self._lock:
            if not self.running:
                return
            self.running = False
            try:
                self._agent.shutdown()
            except Exception as exc:  # noqa: BLE001 - shutdown goes on past pyroscope-io
                _log.warning("leaktrace: pyroscope-io shutdown raised %r", exc)

    def after_fork_in_child(self, *, tags: Mapping[str, str] | None = None) -> bool:
        """Start the child's own agent: pyroscope-io's sampler and upload threads do not survive
        fork, and in the child its old agent cannot be shut down (1.4's drop_agent refuses it);
        a new configure() there starts one that profiles the child. True when it runs."""
        self._lock = threading.Lock()
        was_running, self.running = self.running, False
        if tags is not None:
            self._tags = dict(tags)
        return self.start() if was_running else False

    def thread_tagger(self) -> Any | None:
        """The agent's thread-tag API while it runs (for span links), else None."""
        return self._agent if self.running else None
