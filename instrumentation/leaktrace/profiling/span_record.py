"""Leaktrace's own record of the current span, kept where OpenTelemetry's context changes.

The allocator hook must not call CPython's context-variable API: `PyContextVar_Get` fills the
variable's cache, and CPython allocates in the middle of setting or deleting a variable, so a
lookup made from inside that allocation caches a value that is freed right after (issue 20).
Reading OpenTelemetry's own variable without the API would still leave a dict lookup and an
attribute read of the span in the hook.

So the span is recorded once, where it becomes current: a wrapper around OpenTelemetry's
runtime context sets a variable of ours, in the same `contextvars.Context`, to a `SpanRef` (a
small immutable native object holding the ids as C integers) on every attach and detach. The
hook finds that variable in the context's HAMT by identity and reads two fields. Both variables
live in the same Context and change together, so threads, `Context.run`, asyncio tasks and
greenlets (which swap the whole Context) see the right span with no bookkeeping of ours.

The wrapper returns OpenTelemetry's own tokens, so removing it later is always safe.
"""

from __future__ import annotations

import contextvars
from types import ModuleType
from typing import Any, Protocol

from opentelemetry.context.context import Context, _RuntimeContext
from opentelemetry.trace.propagation import _SPAN_KEY


class SpanRefFactory(Protocol):
    """The native `SpanRef` type: `SpanRef(trace_id, span_id)`."""

    def __call__(self, trace_id: int, span_id: int) -> object: ...


class _RecordingRuntimeContext(_RuntimeContext):
    """OpenTelemetry's runtime context, with the current span mirrored into `var`."""

    def __init__(
        self, inner: _RuntimeContext, var: contextvars.ContextVar[object], spanref: SpanRefFactory
    ) -> None:
        self.inner = inner
        self._var = var
        self._spanref = spanref
        self._none = spanref(0, 0)

    def _ref(self, context: Context) -> object:
        # Runs in attach/detach, on the host's path: whatever the context holds (a foreign span
        # type, ids out of range), it records "no span" rather than raise into the host.
        try:
            span: Any = context.get(_SPAN_KEY)
            if span is None:
                return self._none
            sc = span.get_span_context()
            trace_id, span_id = sc.trace_id, sc.span_id
            if not trace_id or not span_id:
                return self._none
            return self._spanref(trace_id, span_id)
        except Exception:  # noqa: BLE001 - a foreign span must never break attach()
            return self._none

    def attach(self, context: Context) -> contextvars.Token[Context]:
        token = self.inner.attach(context)
        self._var.set(self._ref(context))
        return token

    def get_current(self) -> Context:
        return self.inner.get_current()

    def detach(self, token: contextvars.Token[Context]) -> None:
        # If the inner reset raises (a token from another Context), OpenTelemetry's variable is
        # unchanged, and so is ours.
        self.inner.detach(token)
        self._var.set(self._ref(self.inner.get_current()))


class SpanRecorder:
    """Installs and removes the recording wrapper on `opentelemetry.context`.

    `otel_context` is the module holding `_RUNTIME_CONTEXT` (injectable for tests). The variable
    is this recorder's, created here, so two recorders never share one.
    """

    def __init__(self, *, spanref: SpanRefFactory, otel_context: ModuleType | None = None) -> None:
        if otel_context is None:
            from opentelemetry import context as default_context

            otel_context = default_context
        # Any: `_RUNTIME_CONTEXT` is OpenTelemetry's private module attribute, not in its stubs
        self._module: Any = otel_context
        self._spanref = spanref
        self.var: contextvars.ContextVar[object] = contextvars.ContextVar("leaktrace_current_span")
        self._wrapper: _RecordingRuntimeContext | None = None

    @property
    def installed(self) -> bool:
        return (
            self._wrapper is not None
            and getattr(self._module, "_RUNTIME_CONTEXT", None) is self._wrapper
        )

    def install(self) -> contextvars.ContextVar[object]:
        """Start recording; returns the variable the hook reads. The span current right now is
        recorded too, so a sampler started inside a span attributes to it."""
        if not self.installed:
            inner: _RuntimeContext = self._module._RUNTIME_CONTEXT
            wrapper = _RecordingRuntimeContext(inner, self.var, self._spanref)
            self._wrapper = wrapper
            self._module._RUNTIME_CONTEXT = wrapper
            self.var.set(wrapper._ref(inner.get_current()))
        return self.var

    def uninstall(self) -> None:
        """Stop recording. Leaves OpenTelemetry as it was, unless someone wrapped it since (then
        the wrapper stays in their chain as a pass-through that still records)."""
        wrapper = self._wrapper
        if wrapper is None:
            return
        if getattr(self._module, "_RUNTIME_CONTEXT", None) is self._wrapper:
            self._module._RUNTIME_CONTEXT = wrapper.inner
            self._wrapper = None
