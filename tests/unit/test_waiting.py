"""tests/support/waiting.py: the condition wait the other tests rely on."""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.waiting import wait_until


def test_returns_the_first_truthy_value_once_the_condition_holds() -> None:
    ready = threading.Event()
    box: list[int] = []
    timer = threading.Timer(0.05, lambda: (box.append(7), ready.set()))
    timer.start()
    try:
        assert wait_until(lambda: list(box), timeout=5) == [7]
    finally:
        timer.cancel()


def test_fails_saying_what_it_waited_for_and_never_sleeps_past_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"waited 0.1 s for the job to start; last value 0"):
        wait_until(lambda: 0, timeout=0.1, interval=10, what="the job to start")
    assert time.monotonic() - started < 2  # the 10 s interval was cut at the deadline
