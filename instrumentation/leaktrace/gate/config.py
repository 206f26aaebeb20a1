"""The gate's arguments, each validated before the first request so a typo never reaches
Prometheus. Errors name arguments by their keyword here (see errors.py)."""

from __future__ import annotations

import datetime as _dt
import math
import urllib.parse
from dataclasses import dataclass

from .decision import DEFAULT_PAUSE_AT, DEFAULT_ROLLBACK_AT
from .errors import Arg, GateUsageError
from .promql import SideQueries, parse_duration, side_queries, validate_metric
from .selector import Selector, parse_selector

DEFAULT_CANARY_WINDOW = "1h"
DEFAULT_BASELINE_WINDOW = "7d"
DEFAULT_TIMEOUT_S = 10.0


def validate_http_url(url: str, what: str) -> str:
    """`url` itself; a GateUsageError about argument `what` unless it is http(s) with a host."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise GateUsageError(
            f"{url!r} must be an http:// or https:// URL with a host", argument=what
        )
    return url


def parse_time(text: str) -> float:
    """Unix seconds, or an RFC 3339 / ISO 8601 time (naive times are taken as UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise GateUsageError(
            f"{text!r} is neither unix seconds nor an ISO 8601 time", argument="at"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.UTC)
    return parsed.timestamp()


@dataclass(frozen=True)
class GateConfig:
    prometheus_url: str
    metric: str
    baseline: Selector
    canary: Selector
    canary_window: str = DEFAULT_CANARY_WINDOW
    baseline_window: str = DEFAULT_BASELINE_WINDOW
    pause_at: float = DEFAULT_PAUSE_AT
    rollback_at: float = DEFAULT_ROLLBACK_AT
    timeout_s: float = DEFAULT_TIMEOUT_S
    at: float | None = None  # evaluation time (unix seconds); None = now

    @property
    def canary_queries(self) -> SideQueries:
        return side_queries(self.metric, self.canary, self.canary_window)

    @property
    def baseline_queries(self) -> SideQueries:
        return side_queries(self.metric, self.baseline, self.baseline_window)

    @classmethod
    def build(
        cls,
        *,
        prometheus_url: str,
        metric: str,
        baseline: str,
        canary: str,
        canary_window: str = DEFAULT_CANARY_WINDOW,
        baseline_window: str = DEFAULT_BASELINE_WINDOW,
        pause_at: float = DEFAULT_PAUSE_AT,
        rollback_at: float = DEFAULT_ROLLBACK_AT,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        at: float | None = None,
    ) -> GateConfig:
        """Validate every argument; a GateUsageError's `argument` is the offending keyword."""
        validate_http_url(prometheus_url, "prometheus_url")
        validate_metric(metric)
        for argument, window in (("canary_window", canary_window),
                                 ("baseline_window", baseline_window)):  # fmt: skip
            try:
                parse_duration(window)
            except GateUsageError as exc:
                raise exc.about(argument) from None
        for argument, value in (("pause_at", pause_at), ("rollback_at", rollback_at),
                                ("timeout_s", timeout_s)):  # fmt: skip
            if not (math.isfinite(value) and value > 0):
                raise GateUsageError(f"must be a positive number, got {value!r}", argument=argument)
        if not pause_at < rollback_at:
            raise GateUsageError(
                f"{pause_at} must be below ", Arg("rollback_at"), f" ({rollback_at})",
                argument="pause_at",
            )  # fmt: skip
        if at is not None and not (math.isfinite(at) and at > 0):
            raise GateUsageError(f"must be a positive unix time, got {at!r}", argument="at")
        return cls(
            prometheus_url=prometheus_url,
            metric=metric,
            baseline=parse_selector(baseline, metric, what="baseline"),
            canary=parse_selector(canary, metric, what="canary"),
            canary_window=canary_window,
            baseline_window=baseline_window,
            pause_at=pause_at,
            rollback_at=rollback_at,
            timeout_s=timeout_s,
            at=at,
        )
