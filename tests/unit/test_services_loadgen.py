"""The load generator: its plan (pure), its statistics, and bounded runs against in-process apps."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.loadgen import LoadConfig, Mix, Progress, Scenario, drive
from services.loadgen.main import main as loadgen_main
from services.loadgen.stats import latency_summary_ms, percentile


# --- the plan -------------------------------------------------------------------------------
def plan(scenario: Scenario, n: int, rate: float) -> list[Any]:
    return [scenario.next_request(i / rate) for i in range(n)]


def test_same_seed_same_plan_and_another_seed_another() -> None:
    a = plan(Scenario(users=5, churn=1, seed=3), 300, 50)
    b = plan(Scenario(users=5, churn=1, seed=3), 300, 50)
    c = plan(Scenario(users=5, churn=1, seed=4), 300, 50)
    assert a == b
    assert a != c


def test_every_user_logs_in_before_anything_else_and_churn_brings_new_users() -> None:
    # GIVEN 5 users, 2 new users per second, 10 s at 50 req/s
    scenario = Scenario(users=5, churn=2, seed=1, prefix="t")
    requests = plan(scenario, 500, 50)
    logged_in: dict[str, float] = {}
    for i, r in enumerate(requests):
        t = i / 50
        user = (r.json or {}).get("user_id") or (
            r.path.split("/")[2] if r.path.startswith("/sessions/") else None
        )
        if r.kind == "login":
            assert user not in logged_in
            logged_in[user] = t
        elif r.kind in ("profile", "job", "relogin"):
            # THEN no follow-up request precedes the login plus its grace period
            assert user in logged_in and t >= logged_in[user] + Scenario.LOGIN_GRACE_S
    # THEN about 5 + 2 x 10 users were created and most of them logged in
    assert scenario.users_created == 5 + int(2 * (499 / 50))
    assert len(logged_in) >= 15
    assert all(u.startswith("t") for u in logged_in)


def test_zero_churn_keeps_the_same_users() -> None:
    scenario = Scenario(users=3, churn=0, seed=1)
    requests = plan(scenario, 200, 20)
    assert scenario.users_created == 3
    assert sum(r.kind == "login" for r in requests) == 3


def test_the_mix_weights_shape_the_traffic() -> None:
    only_jobs = plan(
        Scenario(users=2, churn=0, seed=1, mix=Mix(profile=0, job=1, relogin=0, health=0)), 200, 10
    )
    kinds = {r.kind for r in only_jobs[50:]}
    assert kinds == {"job"}
    with pytest.raises(ValueError):
        Mix(profile=0, job=0, relogin=0, health=0)
    with pytest.raises(ValueError):
        Scenario(users=0, churn=1)


# --- statistics -----------------------------------------------------------------------------
def test_percentiles_use_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) is None
    assert latency_summary_ms([0.003, 0.001, 0.002]) == {
        "p50": 2.0,
        "p90": 3.0,
        "p99": 3.0,
        "max": 3.0,
    }
    with pytest.raises(ValueError):
        percentile(values, 101)


# --- bounded runs ---------------------------------------------------------------------------
class StubApp:
    """ASGI app that records request paths; answers 404 for /sessions/*, optionally slowly."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.paths.append(scope["path"])
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = 404 if scope["path"].startswith("/sessions/") else 200
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})


def run(app: StubApp, config: LoadConfig, **kwargs: Any) -> Any:
    async def go() -> Any:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=config.target
        ) as client:
            return await drive(config, client=client, **kwargs)

    return asyncio.run(go())


def test_a_run_sends_rate_times_duration_requests_on_schedule() -> None:
    app = StubApp()
    seen: list[Progress] = []
    started = time.monotonic()
    report = run(
        app,
        LoadConfig(target="http://stub", rate=100, duration_s=1.0, users=4, churn=0),
        progress=seen.append,
        progress_interval_s=0.2,
    )
    took = time.monotonic() - started
    assert report.sent == 100 == len(app.paths)
    assert report.completed == 100 and report.skipped == 0
    assert 0.95 <= took < 3.0
    assert 60 <= report.achieved_rate <= 115
    assert report.latency_ms["p50"] is not None
    # The stub answers 404 to profile reads: they are counted as errors by status.
    assert (
        report.error_kinds.get("HTTP 404", 0)
        == sum(p.startswith("/sessions/") for p in app.paths)
        > 0
    )
    assert report.ok + report.errors == 100
    assert len(seen) >= 3 and [p.elapsed_s for p in seen] == sorted(p.elapsed_s for p in seen)


def test_a_run_stops_at_max_requests() -> None:
    app = StubApp()
    report = run(app, LoadConfig(target="http://stub", rate=500, duration_s=10, max_requests=30))
    assert report.sent == 30 == len(app.paths)
    assert report.elapsed_s < 2.0


def test_slow_responses_are_bounded_by_the_timeout_and_the_concurrency_cap() -> None:
    # GIVEN a target that takes 30 s per request, a 2-request concurrency cap and a 0.3 s timeout
    app = StubApp(delay_s=30)
    started = time.monotonic()
    report = run(
        app, LoadConfig(target="http://stub", rate=50, duration_s=0.4, concurrency=2, timeout_s=0.3)
    )
    # THEN the run still ends quickly, with the excess skipped and the stragglers cancelled
    assert time.monotonic() - started < 3.0
    assert report.sent == 2 and report.skipped == report.planned - 2 > 10
    assert report.unfinished == 2 and report.error_kinds["unfinished"] == 2
    assert report.completed == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target": "ftp://x"},
        {"target": "http://x", "rate": 0},
        {"target": "http://x", "rate": float("inf")},
        {"target": "http://x", "duration_s": -1},
        {"target": "http://x", "duration_s": 10**9},
        {"target": "http://x", "churn": -1},
        {"target": "http://x", "max_requests": 0},
        {"target": "http://x", "concurrency": 0},
    ],
)
def test_load_config_rejects_unbounded_or_invalid_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LoadConfig(**kwargs)


def test_cli_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--target", "http://x", "--rate", "-5"],
        ["--target", "nope", "--duration", "1"],
        ["--rate", "1"],
    ):
        with pytest.raises(SystemExit) as exc:
            loadgen_main(argv)
        assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_cli_reports_connection_errors_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN nothing listens on the target port
    out = tmp_path / "report.json"
    code = loadgen_main(
        [
            "--target",
            "http://127.0.0.1:9",
            "--rate",
            "40",
            "--duration",
            "0.25",
            "--timeout",
            "1",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["sent"] == 10 and report["ok"] == 0
    assert report["error_kinds"] == {"ConnectError": 10}
    captured = capsys.readouterr()
    assert "errors 10" in captured.out
    assert "[loadgen]" in captured.err  # the progress line


class SessionStub:
    """Answers like the services: /sessions/{u}/profile is 404 until u's slow login finished."""

    def __init__(self, login_delay_s: float) -> None:
        self.login_delay_s = login_delay_s
        self.logged_in: set[str] = set()
        self.profile_reads = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status = 200
        if scope["path"] == "/login":
            await asyncio.sleep(self.login_delay_s)
            self.logged_in.add(json.loads(body)["user_id"])
        elif scope["path"].startswith("/sessions/"):
            self.profile_reads += 1
            status = 200 if scope["path"].split("/")[2] in self.logged_in else 404
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def test_a_users_requests_wait_for_its_slow_login_instead_of_racing_it() -> None:
    # GIVEN logins that take 0.8 s, longer than the scenario's 0.5 s grace period
    app = SessionStub(login_delay_s=0.8)

    async def go() -> Any:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://stub"
        ) as client:
            return await drive(
                LoadConfig(target="http://stub", rate=40, duration_s=1.5, users=2, churn=0),
                client=client,
            )

    report = asyncio.run(go())
    # THEN profile reads were sent, and none of them overtook the login (no 404)
    assert app.profile_reads > 5
    assert report.errors == 0, report.error_kinds
