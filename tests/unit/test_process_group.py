"""analysis/process_group.py: a hunted program's group is gone, or killed, before its reports are read."""

from __future__ import annotations

import os
import signal

import pytest
from leaktrace.analysis import process_group


def test_a_group_that_ends_within_the_grace_is_left_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([True, True, False])
    killed: list[int] = []
    monkeypatch.setattr(process_group, "signal_group", lambda pgid, sig: killed.append(sig))
    outlived = process_group.end_group(
        1234, grace_s=5.0, alive=lambda _pgid: next(answers), poll_s=0.001
    )
    assert outlived is False and killed == []


def test_a_group_alive_past_its_grace_is_killed_and_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(process_group, "signal_group", lambda pgid, sig: sent.append((pgid, sig)))
    state = {"alive": True}

    def alive(_pgid: int) -> bool:
        if sent:
            state["alive"] = False  # SIGKILL took
        return state["alive"]

    assert process_group.end_group(4321, grace_s=0.05, alive=alive, poll_s=0.001) is True
    assert sent == [(4321, signal.SIGKILL)]


def test_group_alive_sees_its_own_group_and_not_a_missing_one() -> None:
    assert process_group.group_alive(os.getpgrp()) is True
    missing = max(int(p) for p in os.listdir("/proc") if p.isdigit()) + 100_000
    assert process_group.group_alive(missing) is False
