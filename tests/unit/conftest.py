"""tests/unit is sorted by cost: a test here that starts a process (a child Python, a compiler,
`make`, a fork) says so with `@pytest.mark.subprocess`, so that

    pytest tests/unit -m "not subprocess"

is the quick loop of pure, in-process tests. This is checked, not promised: an unmarked test
(or the fixtures it sets up) that starts a process fails, naming what it started.
"""

from __future__ import annotations

import _posixsubprocess
import os
import subprocess
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

MARK = "subprocess"

# Every way a process starts from Python on Linux: subprocess through its own binding of
# _posixsubprocess.fork_exec (taken at import) or os.posix_spawn; multiprocessing's spawn and
# forkserver through _posixsubprocess.fork_exec; fork start methods, pty and daemonizing code
# through os.fork/os.forkpty; os.system through libc.
_SPAWNERS: tuple[tuple[Any, str], ...] = (
    (subprocess, "_fork_exec"),
    (_posixsubprocess, "fork_exec"),
    (os, "posix_spawn"),
    (os, "posix_spawnp"),
    (os, "fork"),
    (os, "forkpty"),
    (os, "system"),
)


@contextmanager
def _recording_spawns(seen: list[str]) -> Iterator[None]:
    originals = [
        (owner, name, getattr(owner, name)) for owner, name in _SPAWNERS if hasattr(owner, name)
    ]

    def recorder(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def spawn(*args: Any, **kwargs: Any) -> Any:
            if os.getpid() == parent:  # not the child of a fork we already recorded
                seen.append(_describe(name, args))
            return original(*args, **kwargs)

        return spawn

    parent = os.getpid()
    for owner, name, original in originals:
        setattr(owner, name, recorder(name, original))
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def _describe(name: str, args: tuple[Any, ...]) -> str:
    text = _command(name, args)
    return text if len(text) <= 80 else text[:77] + "..."


def _command(name: str, args: tuple[Any, ...]) -> str:
    if name in ("fork_exec", "_fork_exec") and args:
        argv = args[0]
        return " ".join(os.fsdecode(a) for a in argv[:3]) if argv else name
    if name in ("posix_spawn", "posix_spawnp") and len(args) >= 2:
        return " ".join(os.fsdecode(a) for a in list(args[1])[:3])
    if name == "system" and args:
        return str(args[0])[:60]
    return f"os.{name}()"


def _phase(item: pytest.Item) -> Generator[None, Any, Any]:
    if item.get_closest_marker(MARK) is not None:
        return (yield)
    seen: list[str] = []
    with _recording_spawns(seen):
        result = yield
    if seen:
        pytest.fail(
            f"{item.nodeid} started {len(seen)} process(es) ({seen[0]!r} first) but is not marked "
            f"@pytest.mark.{MARK}: tests/unit is for in-process tests (see tests/unit/conftest.py)",
            pytrace=False,
        )
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _phase(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _phase(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _phase(item))
