"""Wait on a condition, not for a time: the one helper tests use instead of sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], *, timeout: float, interval: float = 0.01, what: str = ""
) -> T:
    """Call `predicate` until it returns something truthy, and return that.

    Fails the test (AssertionError, saying `what` it waited for and the last value) when
    `timeout` seconds pass first. Never sleeps past the deadline. On a loaded machine a
    condition takes longer, never a different path: size `timeout` for the slowest case.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(
                f"waited {timeout:g} s for {what or getattr(predicate, '__name__', 'a condition')}; "
                f"last value {value!r}"
            )
        time.sleep(min(interval, remaining))
