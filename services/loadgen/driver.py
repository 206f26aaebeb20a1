"""Open-loop driver: requests start on a fixed schedule (i / rate), whatever the responses do.

Bounded in count (``max_requests``, default rate x duration), in time (no request is scheduled
after ``duration_s``; stragglers get ``timeout_s`` to finish and are then cancelled) and in
concurrency (a request due while ``concurrency`` are in flight is skipped and counted).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from services.loadgen.scenario import Mix, PlannedRequest, Scenario
from services.loadgen.stats import latency_summary_ms

#: Hard ceiling on a run's length, so a typo cannot start an endless run.
MAX_DURATION_S = 24 * 3600.0


@dataclass(frozen=True)
class LoadConfig:
    target: str
    rate: float = 50.0
    duration_s: float = 30.0
    users: int = 10
    churn: float = 0.5
    max_requests: int | None = None
    concurrency: int = 64
    timeout_s: float = 5.0
    seed: int = 1
    prefix: str = "u"
    mix: Mix = field(default_factory=Mix)

    def __post_init__(self) -> None:
        scheme, sep, rest = self.target.partition("://")
        if not sep or scheme not in ("http", "https") or not rest:
            raise ValueError(f"target must be an http(s) URL, got {self.target!r}")
        for name in ("rate", "duration_s", "timeout_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.duration_s > MAX_DURATION_S:
            raise ValueError(f"duration_s must be at most {MAX_DURATION_S:.0f}")
        if self.users <= 0 or self.concurrency <= 0:
            raise ValueError("users and concurrency must be positive")
        if not (self.churn >= 0 and math.isfinite(self.churn)):
            raise ValueError("churn must be >= 0")
        if self.max_requests is not None and self.max_requests <= 0:
            raise ValueError("max_requests must be positive")

    @property
    def request_budget(self) -> int:
        scheduled = math.ceil(self.rate * self.duration_s)
        return scheduled if self.max_requests is None else min(scheduled, self.max_requests)


@dataclass(frozen=True)
class Progress:
    target: str
    elapsed_s: float
    duration_s: float
    sent: int
    completed: int
    errors: int
    skipped: int
    rate: float


def format_progress(p: Progress) -> str:
    return (
        f"[loadgen] {p.target} {p.elapsed_s:5.1f}/{p.duration_s:.0f}s sent={p.sent} done={p.completed} "
        f"errors={p.errors} skipped={p.skipped} rate={p.rate:.1f}/s"
    )


@dataclass(frozen=True)
class LoadReport:
    target: str
    planned: int
    sent: int
    completed: int
    ok: int
    errors: int
    error_kinds: dict[str, int]
    skipped: int
    unfinished: int
    elapsed_s: float
    achieved_rate: float
    latency_ms: dict[str, float | None]
    by_kind: dict[str, int]
    users_created: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lat = self.latency_ms
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.error_kinds.items())) or "none"
        return (
            f"{self.target}: sent {self.sent}/{self.planned} in {self.elapsed_s:.1f}s, achieved {self.achieved_rate:.1f} req/s, "
            f"ok {self.ok}, errors {self.errors} ({kinds}), skipped {self.skipped}, "
            f"latency ms p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} max {lat['max']}"
        )


async def drive(
    config: LoadConfig,
    *,
    client: httpx.AsyncClient | None = None,
    progress: Callable[[Progress], None] | None = None,
    progress_interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> LoadReport:
    """Run one bounded load against ``config.target``; ``client`` is injectable for tests."""
    scenario = Scenario(
        users=config.users,
        churn=config.churn,
        seed=config.seed,
        prefix=config.prefix,
        mix=config.mix,
    )
    own_client = client is None
    if client is None:
        client = httpx.AsyncClient(
            base_url=config.target,
            timeout=config.timeout_s,
            limits=httpx.Limits(
                max_connections=config.concurrency, max_keepalive_connections=config.concurrency
            ),
        )
    latencies: list[float] = []
    error_kinds: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    counts = {"sent": 0, "completed": 0, "ok": 0, "skipped": 0}
    in_flight: set[asyncio.Task[None]] = set()
    # A user's latest login still in flight: that user's next requests wait for it, so a slow
    # login under load does not turn the user's profile read into a spurious 404.
    logins: dict[str, asyncio.Task[None]] = {}

    def forget_login(user_id: str, task: asyncio.Task[None]) -> None:
        if logins.get(user_id) is task:
            del logins[user_id]

    async def one(plan: PlannedRequest, after: asyncio.Task[None] | None) -> None:
        if after is not None and not after.done():
            await asyncio.wait({after}, timeout=config.timeout_s)
        began = clock()
        try:
            response = await client.request(plan.method, plan.path, json=plan.json)
        except httpx.HTTPError as exc:
            error_kinds[type(exc).__name__] += 1
            return
        latencies.append(clock() - began)
        counts["completed"] += 1
        if response.status_code < 400:
            counts["ok"] += 1
        else:
            error_kinds[f"HTTP {response.status_code}"] += 1

    def report_progress(now: float) -> None:
        if progress is not None:
            elapsed = now - start
            progress(
                Progress(
                    target=config.target,
                    elapsed_s=elapsed,
                    duration_s=config.duration_s,
                    sent=counts["sent"],
                    completed=counts["completed"],
                    errors=sum(error_kinds.values()),
                    skipped=counts["skipped"],
                    rate=counts["completed"] / elapsed if elapsed > 0 else 0.0,
                )
            )

    start = clock()
    next_progress = start + progress_interval_s
    budget = config.request_budget
    unfinished = 0
    try:
        for i in range(budget):
            due = i / config.rate
            if due >= config.duration_s:
                break
            delay = start + due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            plan = scenario.next_request(due)
            by_kind[plan.kind] += 1
            if len(in_flight) >= config.concurrency:
                counts["skipped"] += 1
            else:
                counts["sent"] += 1
                gate = (
                    logins.get(plan.user_id)
                    if plan.user_id is not None and plan.kind not in ("login", "relogin")
                    else None
                )
                task = asyncio.create_task(one(plan, gate))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                if plan.user_id is not None and plan.kind in ("login", "relogin"):
                    logins[plan.user_id] = task
                    task.add_done_callback(functools.partial(forget_login, plan.user_id))
            now = clock()
            if now >= next_progress:
                report_progress(now)
                next_progress = now + progress_interval_s
        if in_flight:
            _, pending = await asyncio.wait(set(in_flight), timeout=config.timeout_s)
            for task in pending:
                task.cancel()
            unfinished = len(pending)
            if pending:
                await asyncio.wait(pending, timeout=1.0)
                error_kinds["unfinished"] += unfinished
    finally:
        for task in list(in_flight):
            task.cancel()
        if own_client:
            await client.aclose()
    elapsed = clock() - start
    report_progress(clock())
    return LoadReport(
        target=config.target,
        planned=sum(by_kind.values()),
        sent=counts["sent"],
        completed=counts["completed"],
        ok=counts["ok"],
        errors=sum(error_kinds.values()),
        error_kinds=dict(error_kinds),
        skipped=counts["skipped"],
        unfinished=unfinished,
        elapsed_s=round(elapsed, 3),
        achieved_rate=round(counts["completed"] / elapsed, 2) if elapsed > 0 else 0.0,
        latency_ms=latency_summary_ms(latencies),
        by_kind=dict(by_kind),
        users_created=scenario.users_created,
    )


def run_load(config: LoadConfig, **kwargs: Any) -> LoadReport:
    """Synchronous wrapper around :func:`drive`."""
    return asyncio.run(drive(config, **kwargs))
