"""One API test suite for the leaky and the fixed service: same requests, same responses.

Both services run in-process (Starlette TestClient) against an in-process profile store, with a
real leaktrace Telemetry whose exporters are off. The fuzz tests send the same generated input to
both services and require the same status, a 4xx with a reason for bad input, and never a 5xx.
"""

from __future__ import annotations

import json
import urllib.parse
import warnings
from collections.abc import Iterator
from typing import Any, Self

import leaktrace
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # starlette 1.x warns at import that it prefers httpx2; the services use httpx.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from services.downstream.app import create_app as downstream_app
from services.downstream.app import profile_for
from services.fixed.app import FixedConfig, compose
from services.fixed.app import create_app as fixed_app
from services.leaky import app as leaky_module

SERVICES = ("leaky", "fixed")
# The `stack` fixture is set up once per fuzz test and shared by its examples (hence the
# suppressed health check): both services see the same history, so answers stay comparable.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def quiet_telemetry(name: str) -> leaktrace.Telemetry:
    return leaktrace.init(
        name,
        serve_metrics=False,
        install_log_handlers=False,
        traces_enabled=False,
        logs_enabled=False,
        profiling_enabled=False,
    )


class Stack:
    """downstream + leaky + fixed in-process; leaky's clients and global map are cleaned up."""

    def __init__(self) -> None:
        self.telemetries = [quiet_telemetry(n) for n in ("downstream", "leaky", "fixed")]
        store = downstream_app(telemetry=self.telemetries[0])
        self.to_downstream = lambda: TestClient(store, base_url="http://downstream")
        leaky = leaky_module.create_app(
            downstream_url="http://downstream",
            telemetry=self.telemetries[1],
            client_factory=self.to_downstream,
        )
        self.container = compose(
            FixedConfig(downstream_url="http://downstream"),
            self.telemetries[2],
            http_client=self.to_downstream,
        )
        fixed = fixed_app(self.container)
        self.clients = {"leaky": TestClient(leaky), "fixed": TestClient(fixed)}

    def __enter__(self) -> Self:
        for client in self.clients.values():
            client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for client in self.clients.values():
            client.__exit__(None, None, None)
        self.container.close()
        for session in list(leaky_module.SESSION_CACHE.values()):
            session.client.close()
        leaky_module.SESSION_CACHE.clear()
        for tel in self.telemetries:
            tel.shutdown()


@pytest.fixture
def stack() -> Iterator[Stack]:
    leaky_module.SESSION_CACHE.clear()
    with Stack() as s:
        yield s


def both(stack: Stack, method: str, path: str, **kwargs: Any) -> dict[str, tuple[int, Any]]:
    out: dict[str, tuple[int, Any]] = {}
    for name in SERVICES:
        response = stack.clients[name].request(method, path, **kwargs)
        try:
            body: Any = response.json()
        except json.JSONDecodeError:
            body = response.text
        out[name] = (response.status_code, body)
    return out


# --- the scripted suite ---------------------------------------------------------------------
SCRIPT: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", "/healthz", {}, 200),
    ("POST", "/login", {"json": {"user_id": "alice"}}, 200),
    ("POST", "/login", {"json": {"user_id": "bob.b-2"}}, 200),
    ("GET", "/sessions/alice/profile", {}, 200),
    ("GET", "/sessions/bob.b-2/profile", {}, 200),
    ("POST", "/jobs", {"json": {"user_id": "alice"}}, 202),
    ("POST", "/jobs", {"json": {"user_id": "bob.b-2"}}, 202),
    ("POST", "/login", {"json": {"user_id": "alice"}}, 200),  # second login of the same user
    ("GET", "/sessions/alice/profile", {}, 200),
    ("GET", "/sessions/carol/profile", {}, 404),
    ("POST", "/jobs", {"json": {"user_id": "carol"}}, 404),
    (
        "POST",
        "/login",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        400,
    ),
    ("POST", "/login", {"content": b"[1, 2]"}, 400),
    ("POST", "/login", {"content": b"\xff\xfe\x00"}, 400),
    ("POST", "/login", {"content": b""}, 400),
    ("POST", "/login", {"content": b"NaN"}, 400),
    ("POST", "/login", {"content": b"[" * 5000 + b"]" * 5000}, 400),
    ("POST", "/login", {"json": {}}, 422),
    ("POST", "/login", {"json": {"user_id": 42}}, 422),
    ("POST", "/login", {"json": {"user_id": None}}, 422),
    ("POST", "/login", {"json": {"user_id": ""}}, 422),
    ("POST", "/login", {"json": {"user_id": "a" * 65}}, 422),
    ("POST", "/login", {"json": {"user_id": "bad/slash"}}, 422),
    ("POST", "/login", {"json": {"user_id": "alice", "admin": True}}, 422),
    (
        "POST",
        "/login",
        {
            "content": b"user_id=alice",
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        415,
    ),
    ("POST", "/login", {"content": b'{"user_id": "' + b"a" * 20000 + b'"}'}, 413),
    ("POST", "/login", {"content": b"{}", "headers": {"content-length": "nope"}}, 400),
    ("POST", "/jobs", {"json": {"user_id": ["alice"]}}, 422),
    ("GET", "/sessions/" + "x" * 80 + "/profile", {}, 422),
    ("GET", "/sessions/%E2%98%83/profile", {}, 422),
    ("DELETE", "/login", {}, 405),
    ("GET", "/login", {}, 405),
    ("GET", "/no/such/route", {}, 404),
]


def test_both_services_answer_the_script_identically_and_as_specified(stack: Stack) -> None:
    # GIVEN both services behind the same profile store
    for method, path, kwargs, expected in SCRIPT:
        # WHEN the same request is sent to each
        answers = both(stack, method, path, **kwargs)
        # THEN status and body are identical, and the status is the specified one
        assert answers["leaky"] == answers["fixed"], (method, path)
        status, body = answers["leaky"]
        assert status == expected, (method, path, body)
        if status >= 400:
            assert (
                isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
            ), (method, path, body)


def test_responses_carry_the_profile_store_data(stack: Stack) -> None:
    for name in SERVICES:
        client = stack.clients[name]
        login = client.post("/login", json={"user_id": "dora"})
        expected = profile_for("dora")
        assert login.json() == {
            "user_id": "dora",
            "name": expected["name"],
            "plan": expected["plan"],
        }
        assert client.get("/sessions/dora/profile").json() == expected
        jobs = [client.post("/jobs", json={"user_id": "dora"}).json() for _ in range(3)]
        assert [j["job_id"] for j in jobs] == [1, 2, 3]
        assert {j["status"] for j in jobs} == {"accepted"}


def test_metrics_are_served_and_the_session_store_is_watched(stack: Stack) -> None:
    for name in SERVICES:
        client = stack.clients[name]
        for i in range(3):
            assert client.post("/login", json={"user_id": f"m{i}"}).status_code == 200
        response = client.get("/metrics")
        assert response.status_code == 200
        text = response.text
        assert "service_requests_total 3.0" in text
        assert "service_allocated_blocks" in text
        assert 'leaktrace_watched_entries{container="sessions"} 3.0' in text


def test_a_missing_content_type_is_accepted_and_a_json_suffix_type_too(stack: Stack) -> None:
    for body, headers in (
        (b'{"user_id": "eve"}', {}),
        (b'{"user_id": "eve"}', {"content-type": "application/vnd.api+json; charset=utf-8"}),
    ):
        answers = both(stack, "POST", "/login", content=body, headers=headers)
        assert answers["leaky"] == answers["fixed"]
        assert answers["leaky"][0] == 200


def test_profile_store_unreachable_is_a_502_with_a_reason() -> None:
    # GIVEN services whose profile store refuses connections
    tels = [quiet_telemetry(n) for n in ("leaky", "fixed")]
    dead = "http://127.0.0.1:9"
    leaky = leaky_module.create_app(downstream_url=dead, telemetry=tels[0])
    container = compose(FixedConfig(downstream_url=dead, request_timeout_s=1.0), tels[1])
    try:
        for app in (leaky, fixed_app(container)):
            with TestClient(app) as client:
                # WHEN a user logs in
                response = client.post("/login", json={"user_id": "zed"})
                # THEN the dependency failure is reported, not a crash
                assert response.status_code == 502
                assert "profile store unavailable" in response.json()["error"]
    finally:
        container.close()
        for session in leaky_module.SESSION_CACHE.values():
            session.client.close()
        leaky_module.SESSION_CACHE.clear()
        for tel in tels:
            tel.shutdown()


# --- property-based fuzzing -----------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
user_ids = st.one_of(
    st.text(max_size=80), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True)
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["user_id", "extra", "USER_ID"]), json_values | user_ids, max_size=3
    ).map(lambda d: json.dumps(d).encode()),
    user_ids.map(lambda u: json.dumps({"user_id": u}).encode()),
    st.binary(max_size=200),
    st.integers(min_value=16 * 1024, max_value=300 * 1024).map(
        lambda n: b'{"user_id": "' + b"a" * n + b'"}'
    ),
)
content_types = st.sampled_from(
    [None, "application/json", "text/plain", "application/problem+json", "", "multipart/form-data"]
)


def _check_same_and_never_5xx(answers: dict[str, tuple[int, Any]]) -> None:
    (ls, lbody), (fs, fbody) = answers["leaky"], answers["fixed"]
    assert ls == fs
    assert ls < 500, lbody
    if ls >= 400:
        assert isinstance(lbody, dict) and lbody.get("error"), lbody
        assert lbody == fbody
    elif isinstance(lbody, dict) and "job_id" in lbody:
        assert {k: v for k, v in lbody.items() if k != "job_id"} == {
            k: v for k, v in fbody.items() if k != "job_id"
        }
    else:
        assert lbody == fbody


@FUZZ
@given(path=st.sampled_from(["/login", "/jobs"]), body=bodies, ctype=content_types)
def test_fuzzed_bodies_get_the_same_answer_and_never_a_5xx(
    stack: Stack, path: str, body: bytes, ctype: str | None
) -> None:
    headers = {} if ctype is None else {"content-type": ctype}
    _check_same_and_never_5xx(both(stack, "POST", path, content=body, headers=headers))


@FUZZ
@given(user_id=user_ids)
def test_fuzzed_path_user_ids_get_the_same_answer_and_never_a_5xx(
    stack: Stack, user_id: str
) -> None:
    path = f"/sessions/{urllib.parse.quote(user_id, safe='')}/profile"
    _check_same_and_never_5xx(both(stack, "GET", path))


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=st.sampled_from(
        ["/login", "/jobs", "/healthz", "/sessions/a/profile", "/profiles/a", "/"]
    ),
)
def test_fuzzed_methods_and_routes_never_5xx(stack: Stack, method: str, path: str) -> None:
    _check_same_and_never_5xx(both(stack, method, path, content=b"{}"))


@settings(max_examples=40, deadline=None, database=None)
@given(user_id=user_ids)
def test_the_profile_store_answers_any_path_id_with_a_profile_or_a_4xx(user_id: str) -> None:
    tel = quiet_telemetry("downstream")
    try:
        client = TestClient(downstream_app(telemetry=tel))
        response = client.get(f"/profiles/{urllib.parse.quote(user_id, safe='')}")
        assert response.status_code in (200, 404, 422)
        if response.status_code == 200:
            assert response.json() == profile_for(user_id)
        else:
            assert response.json()["error"]
    finally:
        tel.shutdown()
