"""leaktrace/_signals.py: threads started by leaktrace block the program's signals; callers keep theirs."""

from __future__ import annotations

import signal
import threading

import pytest
from leaktrace._signals import HELD, holding_signals, signals_held, start_thread

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "pthread_sigmask"), reason="no signal masks here"
)


def current_mask() -> set[int]:
    return {int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])}


def test_a_started_thread_blocks_the_held_signals_from_its_start_and_the_caller_keeps_its_mask() -> (
    None
):
    before = current_mask()
    seen: list[set[int]] = []
    start_thread(lambda: seen.append(current_mask()), name="t").join(5)
    assert seen and seen[0] >= HELD
    assert {int(signal.SIGTERM), int(signal.SIGINT), int(signal.SIGCHLD)} <= seen[0]
    assert current_mask() == before


def test_held_never_includes_the_faults_a_thread_raises_itself() -> None:
    for sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT):
        assert int(sig) not in HELD


def test_threads_a_collaborator_starts_inside_the_block_inherit_it_and_a_plain_thread_after_does_not() -> (
    None
):
    masks: dict[str, set[int]] = {}

    def record(tag: str) -> None:
        masks[tag] = current_mask()

    @holding_signals
    def build() -> threading.Thread:  # a collaborator's constructor that starts a worker thread
        worker = threading.Thread(target=record, args=("inside",))
        worker.start()
        return worker

    build().join(5)
    plain = threading.Thread(target=record, args=("after",))
    plain.start()
    plain.join(5)
    assert int(signal.SIGTERM) in masks["inside"]
    assert int(signal.SIGTERM) not in masks["after"]


def test_signals_held_restores_the_mask_even_when_the_body_raises() -> None:
    before = current_mask()
    with pytest.raises(ValueError), signals_held():
        assert int(signal.SIGTERM) in current_mask()
        raise ValueError("boom")
    assert current_mask() == before
