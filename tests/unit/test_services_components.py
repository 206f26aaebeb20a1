"""Unit tests of the services' parts: validation, SessionStore, JobRunner, the DI container,
the leaky service's leak itself, and the fixed service's lack of module-global state."""

from __future__ import annotations
import __future__

import asyncio
import importlib
import inspect
import re
import threading
import time
import types
import warnings
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # starlette 1.x warns at import that it prefers httpx2; the services use httpx.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from services.common.validation import ApiError, LoginRequest, parse_json_object, read_json_object
from services.downstream.app import create_app as downstream_app
from services.fixed.container import Container, Lifetime, LifetimeError
from services.fixed.jobs import JobInput, JobRunner, QueueFull
from services.fixed.sessions import Session, SessionStore
from services.leaky import app as leaky_module
from tests.support.waiting import wait_until
from tests.unit.test_services_api import quiet_telemetry


# --- validation -------------------------------------------------------------------------------
class FakeRequest:
    def __init__(self, chunks: list[bytes], headers: dict[str, str]) -> None:
        self.headers = headers
        self._chunks = chunks
        self.consumed = 0

    async def stream(self) -> Any:
        for chunk in self._chunks:
            self.consumed += 1
            yield chunk


def test_a_body_without_content_length_is_cut_off_at_the_limit_not_buffered_whole() -> None:
    # GIVEN a chunked body far above the limit and no Content-Length
    request = FakeRequest([b"a" * 1024] * 1000, {})
    # WHEN it is read with a 4 KiB limit
    with pytest.raises(ApiError) as err:
        asyncio.run(read_json_object(request, max_bytes=4096))
    # THEN it is refused with 413 after reading just past the limit
    assert err.value.status == 413
    assert request.consumed == 5


@pytest.mark.parametrize(
    ("raw", "status", "fragment"),
    [
        (b"", 400, "empty"),
        (b"   ", 400, "empty"),
        (b"\xc3\x28", 400, "UTF-8"),
        (b"Infinity", 400, "not valid JSON"),
        (b"1" * 5000, 400, "malformed JSON"),
        (b'"str"', 400, "got string"),
        (b"[" * 3000 + b"]" * 3000, 400, "nested too deeply"),
    ],
)
def test_parse_json_object_rejects_with_a_reason(raw: bytes, status: int, fragment: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_json_object(raw)
    assert err.value.status == status
    assert fragment in err.value.reason


def test_login_request_validates_fields() -> None:
    assert LoginRequest.from_body({"user_id": "a.b-c_9"}).user_id == "a.b-c_9"
    for body, fragment in (
        ({"user_id": True}, "got boolean"),
        ({"x": 1}, "unknown field"),
        ({}, "required"),
    ):
        with pytest.raises(ApiError, match=fragment):
            LoginRequest.from_body(body)


# --- SessionStore -----------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Resource:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_store_evicts_the_least_recently_used_beyond_capacity_and_closes_it() -> None:
    clock = FakeClock()
    store: SessionStore[Resource] = SessionStore(max_entries=3, ttl_s=100, clock=clock)
    items = {k: Resource(k) for k in "abcd"}
    for k in "abc":
        store.put(k, items[k])
    assert store.lookup("a") is items["a"]  # a is now the most recently used
    store.put("d", items["d"])
    assert sorted(store) == ["a", "c", "d"]
    assert items["b"].closed == 1
    assert [items[k].closed for k in "acd"] == [0, 0, 0]
    assert store.stats().evicted_capacity == 1


def test_store_expires_idle_entries_after_the_ttl_and_closes_them() -> None:
    clock = FakeClock()
    store: SessionStore[Resource] = SessionStore(max_entries=10, ttl_s=30, clock=clock)
    old, fresh = Resource("old"), Resource("fresh")
    store.put("old", old)
    clock.now = 20
    store.put("fresh", fresh)
    clock.now = 31  # old idle 31 s, fresh idle 11 s
    assert store.lookup("old") is None
    assert old.closed == 1
    assert store.lookup("fresh") is fresh
    clock.now = 60  # fresh was touched at 31: idle 29 s, still alive (sliding TTL)
    assert store.prune() == 0
    clock.now = 62
    assert store.prune() == 1 and fresh.closed == 1 and len(store) == 0


def test_replacing_an_entry_closes_the_old_value_once() -> None:
    store: SessionStore[Resource] = SessionStore(max_entries=2, ttl_s=10, clock=FakeClock())
    first, second = Resource("1"), Resource("2")
    store.put("u", first)
    store.put("u", second)
    assert (first.closed, second.closed, store["u"]) == (1, 0, second)
    store.put("u", second)  # the same object again must not be closed
    assert second.closed == 0
    store.close()
    assert second.closed == 1 and len(store) == 0


def test_store_stays_bounded_under_concurrent_writers() -> None:
    store: SessionStore[Resource] = SessionStore(max_entries=50, ttl_s=100)
    created: list[Resource] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(300):
            r = Resource(f"{n}-{i}")
            with lock:
                created.append(r)
            store.put(r.name, r)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(store) == 50
    # Everything not in the store was closed exactly once; what is in it is open.
    live = set(store)
    assert all(r.closed == (0 if r.name in live else 1) for r in created)


def test_closing_a_session_cancels_its_queued_jobs() -> None:
    session = Session(user_id="u", profile={}, headers={})
    queued: Future[bool] = Future()
    session.track(queued)
    assert session.pending_jobs == 1
    session.close()
    assert queued.cancelled() and session.pending_jobs == 0


# --- JobRunner --------------------------------------------------------------------------------
def test_jobs_end_by_their_timeout_and_the_backlog_is_bounded() -> None:
    runner = JobRunner(max_workers=2, max_pending=3, job_timeout_s=0.2)
    try:
        started = time.monotonic()
        futures = [runner.submit(JobInput(runner.next_id(), "u", "free")) for _ in range(3)]
        with pytest.raises(QueueFull):
            runner.submit(JobInput(runner.next_id(), "u", "free"))
        results = [f.result(timeout=5) for f in futures]
        elapsed = time.monotonic() - started
        assert results == [False, False, False]  # nobody acknowledged: each timed out
        assert 0.35 <= elapsed < 3.0  # 3 jobs on 2 workers: two rounds of 0.2 s
        assert runner.timed_out == 3
        # The slots came back: a new job is accepted.
        assert runner.submit(JobInput(runner.next_id(), "u", "free")).result(timeout=5) is False
    finally:
        runner.close()


def test_closing_the_runner_releases_waiting_jobs_promptly() -> None:
    runner = JobRunner(max_workers=1, max_pending=4, job_timeout_s=60)
    future = runner.submit(JobInput(1, "u", "free"))
    wait_until(future.running, timeout=5, what="the job to start")
    started = time.monotonic()
    runner.close()
    assert future.result(timeout=5) is True
    assert time.monotonic() - started < 5
    with pytest.raises(QueueFull):
        runner.submit(JobInput(2, "u", "free"))


# --- Container --------------------------------------------------------------------------------
class Single:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Scoped(Single):
    pass


class Transient:
    def __init__(self, single: Single, scoped: Scoped) -> None:
        self.single, self.scoped = single, scoped


def test_container_honours_each_lifetime() -> None:
    c = Container()
    c.register(Single, lambda r: Single(), Lifetime.SINGLETON)
    c.register(Scoped, lambda r: Scoped(), Lifetime.SCOPED)
    c.register(
        Transient, lambda r: Transient(r.resolve(Single), r.resolve(Scoped)), Lifetime.TRANSIENT
    )
    with c.scope() as s1:
        a, b = s1.resolve(Transient), s1.resolve(Transient)
        assert a is not b  # transient: new each time
        assert a.scoped is b.scoped  # scoped: one per scope
        assert a.single is c.resolve(Single)  # singleton: one per container
    assert a.scoped.closed and not a.single.closed  # scope end closes scoped only
    with c.scope() as s2:
        assert s2.resolve(Scoped) is not a.scoped
    c.close()
    assert a.single.closed


def test_container_refuses_scoped_objects_outside_a_scope_and_in_singletons() -> None:
    c = Container()
    c.register(Scoped, lambda r: Scoped(), Lifetime.SCOPED)
    c.register(Single, lambda r: (r.resolve(Scoped), Single())[1], Lifetime.SINGLETON)
    with pytest.raises(LifetimeError):
        c.resolve(Scoped)
    with c.scope() as s, pytest.raises(LifetimeError):
        s.resolve(Single)  # a singleton capturing a request's object
    with pytest.raises(LookupError):
        c.resolve(Transient)
    with pytest.raises(ValueError):
        c.register(Scoped, lambda r: Scoped(), Lifetime.SCOPED)


def test_the_fixed_composition_declares_the_three_lifetimes() -> None:
    import httpx

    from services.fixed.app import FixedConfig, RequestContext, Sessions, SessionService, compose

    tel = quiet_telemetry("fixed")
    container = compose(FixedConfig(downstream_url="http://127.0.0.1:9"), tel)
    try:
        assert container.lifetime_of(httpx.Client) is Lifetime.SINGLETON
        assert container.lifetime_of(Sessions) is Lifetime.SINGLETON
        assert container.lifetime_of(RequestContext) is Lifetime.SCOPED
        assert container.lifetime_of(SessionService) is Lifetime.TRANSIENT
        client = container.resolve(httpx.Client)
        assert client is container.resolve(httpx.Client)
    finally:
        container.close()
        tel.shutdown()
    assert client.is_closed


# --- no module-global mutable state in the fixed service --------------------------------------
IMMUTABLE = (
    __future__._Feature,
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    tuple,
    frozenset,
    range,
    re.Pattern,
    types.MappingProxyType,
)


def _module_level_mutables(module: types.ModuleType) -> list[str]:
    bad = []
    for name, value in vars(module).items():
        if (
            name.startswith("__")
            or inspect.ismodule(value)
            or inspect.isclass(value)
            or callable(value)
        ):
            continue
        if isinstance(value, IMMUTABLE):
            continue
        if hasattr(value, "__dataclass_params__") and value.__dataclass_params__.frozen:
            continue
        if type(value).__module__ == "typing" or type(value).__name__ in ("TypeVar", "ParamSpec"):
            continue
        bad.append(f"{module.__name__}.{name} ({type(value).__name__})")
    return bad


@pytest.mark.parametrize(
    "module_name",
    [
        "services.fixed.app",
        "services.fixed.container",
        "services.fixed.jobs",
        "services.fixed.sessions",
        "services.fixed.main",
        "services.common.validation",
        "services.common.web",
        "services.common.stats",
        "services.common.profiles",
        "services.common.telemetry",
        "services.downstream.app",
        "services.loadgen.driver",
        "services.loadgen.scenario",
    ],
)
def test_no_module_global_mutable_state_outside_the_leaky_service(module_name: str) -> None:
    assert _module_level_mutables(importlib.import_module(module_name)) == []


def test_the_checker_does_flag_the_leaky_global() -> None:
    # The check above must be able to fail: it catches the leaky service's map.
    assert "services.leaky.app.SESSION_CACHE (dict)" in _module_level_mutables(leaky_module)


# --- the leak itself --------------------------------------------------------------------------
@pytest.fixture
def leaky_client() -> Iterator[TestClient]:
    leaky_module.SESSION_CACHE.clear()
    tels = [quiet_telemetry("downstream"), quiet_telemetry("leaky")]
    store = downstream_app(telemetry=tels[0])
    app = leaky_module.create_app(
        downstream_url="http://downstream",
        telemetry=tels[1],
        client_factory=lambda: TestClient(store, base_url="http://downstream"),
    )
    try:
        with TestClient(app) as client:
            yield client
    finally:
        for session in leaky_module.SESSION_CACHE.values():
            session.client.close()
        leaky_module.SESSION_CACHE.clear()
        for tel in tels:
            tel.shutdown()


def test_leaky_keeps_every_session_with_its_own_client_and_buffer(leaky_client: TestClient) -> None:
    for i in range(20):
        assert leaky_client.post("/login", json={"user_id": f"user{i}"}).status_code == 200
    sessions = list(leaky_module.SESSION_CACHE.values())
    assert len(sessions) == 20
    assert len({id(s.client) for s in sessions}) == 20
    assert all(len(s.buffer) == leaky_module.SESSION_BUFFER_BYTES for s in sessions)


def test_leaky_job_threads_pin_replaced_sessions_until_shutdown(leaky_client: TestClient) -> None:
    # GIVEN a session with a running job
    leaky_client.post("/login", json={"user_id": "pinned"})
    first = leaky_module.SESSION_CACHE["pinned"]
    threads_before = threading.active_count()
    assert leaky_client.post("/jobs", json={"user_id": "pinned"}).status_code == 202
    # WHEN the user logs in again (the map entry is overwritten)
    leaky_client.post("/login", json={"user_id": "pinned"})
    # THEN the old session's client was not closed, and the job thread still runs
    assert leaky_module.SESSION_CACHE["pinned"] is not first
    assert not first.client.is_closed
    wait_until(lambda: threading.active_count() > threads_before, timeout=2, what="the job thread")
    assert any(t.name == "job-1" and t.is_alive() for t in threading.enumerate())


# --- composition roots: bad configuration is a message and an exit code, not a traceback -------
QUIET_ENV = {
    "LEAKTRACE_TRACES_ENABLED": "false",
    "LEAKTRACE_LOGS_ENABLED": "false",
    "LEAKTRACE_PROFILING_ENABLED": "false",
    "LEAKTRACE_LOG_CONSOLE": "false",
}


@pytest.mark.parametrize(
    "module", ["services.downstream.main", "services.leaky.main", "services.fixed.main"]
)
def test_bad_arguments_and_env_exit_2_with_a_message(
    module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    main = importlib.import_module(module).main
    for key, value in QUIET_ENV.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exc:
        main(["--port", "70000"])
    assert exc.value.code == 2
    assert "outside 0..65535" in capsys.readouterr().err
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2 and "port must be a number" in capsys.readouterr().err
    monkeypatch.delenv("PORT")
    if module != "services.downstream.main":
        monkeypatch.setenv("DOWNSTREAM_URL", "not-a-url")
        with pytest.raises(SystemExit) as exc:
            main(["--port", "0"])
        assert exc.value.code == 2 and "expected a URL" in capsys.readouterr().err


def test_a_port_in_use_is_reported_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from services.downstream.main import main

    for key, value in QUIET_ENV.items():
        monkeypatch.setenv(key, value)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exc:
            main(["--host", "127.0.0.1", "--port", str(port)])
    assert f"cannot listen on 127.0.0.1:{port}" in str(exc.value.code)
