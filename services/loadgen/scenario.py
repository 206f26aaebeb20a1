"""Which request to send next: a pure, seeded plan of logins, profile reads and jobs.

A pool of ``users`` active users; ``churn`` new users per second replace the oldest ones, so
fresh user ids (hence fresh sessions) keep arriving. A user's first request is always its login;
the plan depends only on the seed and the schedule time, so two targets driven with the same
config receive the same request sequence.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Mix:
    """Relative weights of the requests sent for a user that is already logged in."""

    profile: float = 0.74
    job: float = 0.08
    relogin: float = 0.01
    health: float = 0.17

    def __post_init__(self) -> None:
        weights = (self.profile, self.job, self.relogin, self.health)
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("mix weights must be non-negative and not all zero")


@dataclass(frozen=True)
class PlannedRequest:
    kind: str  # login | profile | job | relogin | health
    method: str
    path: str
    json: dict[str, Any] | None = None
    user_id: str | None = None


@dataclass
class _User:
    user_id: str
    ready_at: float | None = None  # None: not logged in yet


class Scenario:
    #: A user's follow-up requests wait this long after its login was scheduled, so they do not
    #: overtake the login on another connection.
    LOGIN_GRACE_S = 0.5

    def __init__(
        self, *, users: int, churn: float, seed: int = 1, prefix: str = "u", mix: Mix = Mix()
    ) -> None:
        if users <= 0:
            raise ValueError("users must be positive")
        if churn < 0:
            raise ValueError("churn must be >= 0")
        self._rng = random.Random(seed)
        self._churn = churn
        self._prefix = prefix
        self._mix = mix
        self._next_id = 0
        self._pool: deque[_User] = deque(self._new_user() for _ in range(users))
        self._arrived = 0

    def _new_user(self) -> _User:
        self._next_id += 1
        return _User(f"{self._prefix}{self._next_id:07d}")

    @property
    def users_created(self) -> int:
        return self._next_id

    def _advance(self, t: float) -> None:
        due = int(self._churn * t)
        while self._arrived < due:
            self._arrived += 1
            self._pool.popleft()  # the oldest user leaves (its session is abandoned, not logged out)
            self._pool.append(self._new_user())

    def next_request(self, t: float) -> PlannedRequest:
        """The request scheduled at ``t`` seconds after the start (t must not decrease)."""
        self._advance(t)
        user = self._pool[self._rng.randrange(len(self._pool))]
        if user.ready_at is None:
            user.ready_at = t + self.LOGIN_GRACE_S
            return PlannedRequest(
                "login", "POST", "/login", {"user_id": user.user_id}, user.user_id
            )
        if user.ready_at > t:
            return PlannedRequest("health", "GET", "/healthz")
        m = self._mix
        kind = self._rng.choices(
            ("profile", "job", "relogin", "health"), (m.profile, m.job, m.relogin, m.health)
        )[0]
        if kind == "profile":
            return PlannedRequest(
                "profile", "GET", f"/sessions/{user.user_id}/profile", None, user.user_id
            )
        if kind == "job":
            return PlannedRequest("job", "POST", "/jobs", {"user_id": user.user_id}, user.user_id)
        if kind == "relogin":
            user.ready_at = t + self.LOGIN_GRACE_S
            return PlannedRequest(
                "relogin", "POST", "/login", {"user_id": user.user_id}, user.user_id
            )
        return PlannedRequest("health", "GET", "/healthz")
