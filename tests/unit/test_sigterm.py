"""leaktrace/_sigterm.py: flush on SIGTERM where the program has not claimed it, never in pool workers."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from leaktrace import _sigterm


class Recorder:
    def __init__(self) -> None:
        self.calls = 0

    def shutdown(self, timeout: float | None = None) -> bool:
        self.calls += 1
        return True


@pytest.fixture
def sigterm_default() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_multiprocessing_children_are_told_from_their_command_line() -> None:
    spawned = [
        "python",
        "-c",
        "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5)",
        "--multiprocessing-fork",
    ]
    forkserver = [
        "python",
        "-c",
        "from multiprocessing.forkserver import main; main(11, 12, ['__main__'])",
    ]
    assert _sigterm.started_by_multiprocessing(spawned)
    assert _sigterm.started_by_multiprocessing(forkserver)
    assert not _sigterm.started_by_multiprocessing(["python", "app.py", "--workers", "2"])


def test_install_takes_an_unclaimed_sigterm_and_leaves_a_claimed_one(
    sigterm_default: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sigterm.sys, "orig_argv", ["python", "app.py"])
    assert _sigterm.install(Recorder()) is True
    assert isinstance(signal.getsignal(signal.SIGTERM), _sigterm.FlushThenDie)

    def own(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGTERM, own)
    assert _sigterm.install(Recorder()) is False
    assert signal.getsignal(signal.SIGTERM) is own


def test_a_multiprocessing_child_keeps_the_default(
    sigterm_default: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        _sigterm.sys, "orig_argv", ["python", "-c", "from multiprocessing.spawn import spawn_main"]
    )
    assert _sigterm.install(Recorder()) is False
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_pool_worker_gives_back_only_leaktraces_handler(sigterm_default: None) -> None:
    signal.signal(signal.SIGTERM, _sigterm.FlushThenDie(Recorder()))
    _sigterm.release_in_pool_worker()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def own(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGTERM, own)
    _sigterm.release_in_pool_worker()
    assert signal.getsignal(signal.SIGTERM) is own


def test_the_handler_flushes_then_dies_by_the_same_signal(
    monkeypatch: pytest.MonkeyPatch, sigterm_default: None
) -> None:
    telemetry, sent = Recorder(), []
    monkeypatch.setattr(_sigterm.os, "kill", lambda pid, sig: sent.append(sig))
    signal.signal(signal.SIGTERM, _sigterm.FlushThenDie(telemetry))
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler)
    handler(signal.SIGTERM, None)
    assert telemetry.calls == 1 and sent == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
