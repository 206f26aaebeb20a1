"""Verdicts: what the hunter announces when a leak suspect appears, changes or clears.

One structured log record per new, changed or cleared verdict, emitted inside the suspect's
first retained request's trace context (OTLP logs then carry that trace_id) and with all
retained trace ids in `extra`; and, when a tracer is given, one span per verdict with an
event and links to the retained requests.
"""

from __future__ import annotations

import logging
from typing import Any

from leaktrace.analysis.callpath import format_frame
from leaktrace.analysis.grouping import group_key
from leaktrace.analysis.model import Report, Suspect


class VerdictPublisher:
    """Remembers the verdicts announced so far and announces what a new report changes."""

    def __init__(
        self,
        *,
        logger: logging.Logger,
        tracer: Any = None,  # opentelemetry.trace.Tracer
        clear_after: int = 3,
        growth_change_ratio: float = 0.5,
    ) -> None:
        self._logger = logger
        self._tracer = tracer
        self._clear_after = clear_after
        self._growth_change_ratio = growth_change_ratio
        self._published: dict[str, Suspect] = {}  # last announced state per call path
        self._missing: dict[str, int] = {}  # consecutive reports without a published suspect

    def publish(self, report: Report) -> None:
        # A suspect near the thresholds may drop out of one report and come back in the
        # next; it is "cleared" only after `clear_after` reports in a row without it.
        current = {verdict_identity(s): s for s in report.suspects}
        for ident, s in current.items():
            old = self._published.get(ident)
            self._missing.pop(ident, None)
            if old is None:
                self._announce("new", s)
            elif self._changed(old, s):
                self._announce("changed", s)
            else:
                continue
            self._published[ident] = s
        for ident in [i for i in self._published if i not in current]:
            self._missing[ident] = self._missing.get(ident, 0) + 1
            if self._missing[ident] >= self._clear_after:
                self._announce("cleared", self._published.pop(ident))
                del self._missing[ident]

    def _changed(self, old: Suspect, new: Suspect) -> bool:
        if (old.holder.name if old.holder else None) != (new.holder.name if new.holder else None):
            return True
        if bool(old.trace_ids) != bool(new.trace_ids):
            return True
        base = max(abs(old.growth_bytes_per_s), 1.0)
        return (
            abs(new.growth_bytes_per_s - old.growth_bytes_per_s) / base > self._growth_change_ratio
        )

    def _announce(self, change: str, s: Suspect) -> None:
        attrs: dict[str, Any] = {
            "leaktrace.event": "leak_verdict",
            "leak.change": change,
            "leak.call_path": s.call_path,
            "leak.lines": ",".join(str(n) for n in s.lines),
            "leak.endpoints": "; ".join(e.describe() for e in s.endpoints[:5]),
            "leak.function": s.frames[0].function if s.frames else "",
            "leak.file": s.frames[0].file if s.frames else "",
            "leak.line": s.frames[0].line if s.frames else 0,
            "leak.growth_bytes_per_s": round(s.growth_bytes_per_s, 1),
            "leak.retained_bytes": s.retained_bytes,
            "leak.retained_by": s.retained_by or "",
            "leak.trace_ids": ",".join(s.trace_ids[:20]),
            "leak.p_value": s.p_value,
        }
        with _in_trace_of(s):
            if change == "cleared":
                self._logger.info("leak suspect cleared: %s", s.call_path, extra=attrs)
            else:
                self._logger.warning(
                    "leak suspect %s: %s growing %.0f B/s, retained by %s",
                    change,
                    s.call_path,
                    s.growth_bytes_per_s,
                    s.retained_by or "unknown",
                    extra=attrs,
                )
        if self._tracer is not None:
            self._span_event(change, s, attrs)

    def _span_event(self, change: str, s: Suspect, attrs: dict[str, Any]) -> None:
        from opentelemetry import trace

        links = []
        for tid, sid in zip(s.trace_ids[:10], s.span_ids[:10], strict=False):
            ctx = trace.SpanContext(int(tid, 16), int(sid, 16) if sid else 0, is_remote=True)
            if ctx.is_valid:
                links.append(trace.Link(ctx))
        with self._tracer.start_as_current_span("leaktrace.leak_verdict", links=links) as span:
            span.add_event(
                f"leak.{change}", attributes={k: v for k, v in attrs.items() if v is not None}
            )


def verdict_identity(s: Suspect) -> str:
    """A verdict's identity across reports: the merged suspect's function and caller (not the
    line that happens to hold the most bytes this tick, nor the holder: a new holder is a change)."""
    if not s.key:
        return s.call_path
    file, function, callers, _ = group_key(s)
    return f"{file}:{function}" + "".join(f" <- {format_frame(c, short=False)}" for c in callers)


class _in_trace_of:
    """Context manager: make the suspect's first retained request current, for log correlation."""

    def __init__(self, s: Suspect) -> None:
        self._s = s
        self._token: Any = None

    def __enter__(self) -> None:
        if not (self._s.trace_ids and self._s.span_ids and self._s.span_ids[0]):
            return
        try:
            from opentelemetry import context, trace

            sc = trace.SpanContext(
                int(self._s.trace_ids[0], 16), int(self._s.span_ids[0], 16), is_remote=True
            )
            if sc.is_valid:
                self._token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(sc)))
        except Exception:  # noqa: BLE001 - correlation is a nicety
            self._token = None

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            from opentelemetry import context

            context.detach(self._token)
