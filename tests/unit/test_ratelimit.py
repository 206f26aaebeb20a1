from __future__ import annotations

import logging

import pytest
from leaktrace._ratelimit import RateLimitedLogger, RateLimiter, RateLimitFilter


def test_one_event_per_key_per_interval_and_suppressed_count_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = RateLimitedLogger(logging.getLogger("rl-test"), RateLimiter(10, clock=lambda: now[0]))
    with caplog.at_level(logging.WARNING, logger="rl-test"):
        for _ in range(5):
            log.warning("k", "push failed: %s", "boom")
        log.warning("other", "another kind")
        now[0] = 10.0
        log.warning("k", "push failed: %s", "again")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "push failed: boom",
        "another kind",
        "push failed: again (4 similar warnings suppressed)",
    ]


def test_limiter_memory_is_bounded_by_max_keys() -> None:
    limiter = RateLimiter(60, clock=lambda: 0.0, max_keys=8)
    for i in range(1000):
        assert limiter.allow(f"key-{i}")[0]
    assert len(limiter._last) <= 8


def test_filter_passes_info_and_limits_warnings() -> None:
    f = RateLimitFilter(RateLimiter(60, clock=lambda: 0.0))

    def rec(level: int, msg: str) -> logging.LogRecord:
        return logging.LogRecord("otel", level, "", 0, msg, (), None)

    assert f.filter(rec(logging.INFO, "x")) and f.filter(rec(logging.INFO, "x"))
    assert f.filter(rec(logging.WARNING, "retrying")) is True
    assert f.filter(rec(logging.WARNING, "retrying")) is False
    assert f.filter(rec(logging.ERROR, "different")) is True
