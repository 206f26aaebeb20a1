"""The loading of installed OpenTelemetry instrumentors (leaktrace's distro, distro.py, uses it).

Which instrumentors load is decided by OpenTelemetry's loader, so its documented variables
hold: OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (names, or `*` for none), the dependency checks
that skip an instrumentation whose library is missing or of another version, and the
instrumentors' own variables. What leaktrace changes: an instrumentor that raises is one
warning, and the others still load (OpenTelemetry's loader stops at the first exception).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.instrumentation.environment_variables import (
    OTEL_PYTHON_CONFIGURATOR,
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS,
    OTEL_PYTHON_DISTRO,
)
from opentelemetry.trace import TracerProvider

__all__ = [
    "ENTRY_POINT_NAME",
    "OTEL_PYTHON_CONFIGURATOR",
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
    "OTEL_PYTHON_DISTRO",
    "EntryPointLike",
    "Instrumentation",
    "InstrumentorFailure",
]

#: The name of leaktrace's distro, configurator and post-instrument hook entry points
#: (pyproject.toml): `OTEL_PYTHON_DISTRO=leaktrace OTEL_PYTHON_CONFIGURATOR=leaktrace`.
ENTRY_POINT_NAME = "leaktrace"

_log = logging.getLogger("leaktrace.instrumentation")

#: opentelemetry-instrumentation-logging's switch for the OpenTelemetry log handler it puts on the
#: root logger (on by default since 0.5xb): leaktrace exports stdlib logging itself, so that
#: handler would send every record twice, and, installed before leaktrace starts, make the root
#: logger look configured to leaktrace (no console handler, INFO records dropped).
OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION = "OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION"


class EntryPointLike(Protocol):
    """What an `importlib.metadata.EntryPoint` offers the loader."""

    @property
    def name(self) -> str: ...

    def load(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class InstrumentorFailure:
    name: str  # the entry point name, as in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS
    error: str


def _passes_through(exc: BaseException) -> bool:
    # OpenTelemetry's loader has its own quiet handling for these two: the library is not
    # installed, or its version is not the instrumentation's.
    if isinstance(exc, ModuleNotFoundError):
        return True
    try:
        from opentelemetry.instrumentation.dependencies import DependencyConflictError
    except ImportError:  # older opentelemetry-instrumentation has no such error
        return False
    return isinstance(exc, DependencyConflictError)


class Instrumentation:
    """The instrumentors loaded into this process through one Telemetry (or one distro call).

    `load()` runs OpenTelemetry's own loader with this object as its distro; the loader calls
    `load_instrumentor` for every entry point it accepts.
    """

    def __init__(
        self, *, tracer_provider: TracerProvider | None = None, logger: logging.Logger | None = None
    ) -> None:
        self._tracer_provider = tracer_provider
        self._log = logger or _log
        self._lock = threading.Lock()
        self._instrumented: dict[str, Any] = {}
        self._present: set[str] = set()
        self._failed: dict[str, str] = {}

    # --- results ----------------------------------------------------------------------------
    @property
    def instrumented(self) -> tuple[str, ...]:
        """Entry point names this object instrumented (and has not uninstrumented)."""
        with self._lock:
            return tuple(sorted(self._instrumented))

    @property
    def already_instrumented(self) -> tuple[str, ...]:
        """Entry points whose instrumentor was already active (another loader, or by hand)."""
        with self._lock:
            return tuple(sorted(self._present))

    @property
    def failed(self) -> tuple[InstrumentorFailure, ...]:
        with self._lock:
            return tuple(InstrumentorFailure(n, e) for n, e in sorted(self._failed.items()))

    def active(self) -> tuple[str, ...]:
        """Everything instrumented in this process as far as this object saw."""
        with self._lock:
            return tuple(sorted(set(self._instrumented) | self._present))

    # --- loading ----------------------------------------------------------------------------
    def load(self, *, skip: Iterable[str] = ()) -> Instrumentation:
        """Load the installed instrumentors through OpenTelemetry's loader; never raises.

        `skip`: entry point names left out of this call on top of
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (what the caller instruments by hand).
        """
        try:
            from opentelemetry.instrumentation.auto_instrumentation._load import _load_instrumentors
        except ImportError as exc:
            self._log.warning(
                "leaktrace: cannot load the OpenTelemetry instrumentors (%r); only what the "
                "program instruments itself gets spans",
                exc,
            )
            return self
        try:
            _load_instrumentors(_Skipping(self, frozenset(skip)))  # type: ignore[no-untyped-call]
        except Exception as exc:  # noqa: BLE001 - a pre/post-instrument hook or a dependency check raised
            self._log.warning(
                "leaktrace: loading the OpenTelemetry instrumentors stopped (%r)", exc
            )
        return self

    def load_instrumentor(self, entry_point: EntryPointLike, **kwargs: Any) -> None:
        """The distro hook OpenTelemetry's loader calls once per accepted entry point."""
        name = entry_point.name
        with self._lock:
            if name in self._failed:
                return  # said once; a composition root loading after the bootstrap stays quiet
        try:
            instrumentor = entry_point.load()()
            if getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
                # Loaded already (by `leaktrace run` before a composition root asks, or by the
                # program): instrumenting twice only logs OpenTelemetry's warning.
                with self._lock:
                    if name not in self._instrumented:
                        self._present.add(name)
                return
            if self._tracer_provider is not None:
                kwargs.setdefault("tracer_provider", self._tracer_provider)
            if name == "logging" and OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION not in os.environ:
                kwargs.setdefault("enable_log_auto_instrumentation", False)
            instrumentor.instrument(**kwargs)
        except Exception as exc:
            if _passes_through(exc):
                raise
            with self._lock:
                self._failed[name] = repr(exc)
            self._log.warning(
                "leaktrace: the %r instrumentation failed and is skipped (%r); the others are loaded "
                "(%s=%s to leave it out)",
                name,
                exc,
                OTEL_PYTHON_DISABLED_INSTRUMENTATIONS,
                name,
            )
            return
        with self._lock:
            self._instrumented[name] = instrumentor
        self._log.debug("leaktrace: instrumented %s", name)

    def uninstrument(self) -> None:
        """Undo what this object instrumented (tests; a process simply exits)."""
        with self._lock:
            loaded = list(self._instrumented.items())
            self._instrumented.clear()
        for name, instrumentor in loaded:
            try:
                instrumentor.uninstrument()
            except Exception as exc:  # noqa: BLE001 - the rest are still undone
                self._log.warning("leaktrace: uninstrumenting %r failed (%r)", name, exc)

    def summary(self) -> str:
        active = self.active()
        text = f"instrumented {', '.join(active) if active else 'nothing'}"
        failed = self.failed
        if failed:
            text += f"; failed: {', '.join(f.name for f in failed)}"
        return text


class _Skipping:
    """The distro one `load(skip=...)` hands OpenTelemetry's loader."""

    def __init__(self, target: Instrumentation, skip: frozenset[str]) -> None:
        self._target = target
        self._skip = skip

    def load_instrumentor(self, entry_point: EntryPointLike, **kwargs: Any) -> None:
        if entry_point.name in self._skip:
            _log.debug("leaktrace: %s is instrumented by the program itself", entry_point.name)
            return
        self._target.load_instrumentor(entry_point, **kwargs)
