"""Bounded session storage: max entries, a sliding TTL, and evicted sessions are closed."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar


class Closeable(Protocol):
    def close(self) -> None: ...


V = TypeVar("V", bound=Closeable)


@dataclass
class Session:
    """Per-user state only: no client, no buffer (those are shared or request-scoped)."""

    user_id: str
    profile: Mapping[str, Any]
    headers: Mapping[str, str]
    _jobs: set[Future[Any]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def track(self, job: Future[Any]) -> None:
        with self._lock:
            self._jobs.add(job)
        job.add_done_callback(self._forget)

    def _forget(self, job: Future[Any]) -> None:
        with self._lock:
            self._jobs.discard(job)

    @property
    def pending_jobs(self) -> int:
        with self._lock:
            return len(self._jobs)

    def close(self) -> None:
        # Jobs not started yet die with the session; running ones end by their own timeout.
        with self._lock:
            jobs, self._jobs = self._jobs, set()
        for job in jobs:
            job.cancel()


@dataclass(frozen=True)
class StoreStats:
    entries: int
    evicted_capacity: int
    evicted_expired: int
    replaced: int


class SessionStore(Mapping[str, V], Generic[V]):
    """LRU map with a capacity and a sliding TTL. Thread-safe; evicted values are closed
    outside the lock so a slow close() never blocks other requests.

    It is a read-only Mapping (``store[key]`` and ``get`` peek without refreshing the entry;
    ``lookup`` is the refreshing read) so that
    ``telemetry.watch`` can sample its entries like any dict."""

    def __init__(
        self, *, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        if not ttl_s > 0:
            raise ValueError("ttl_s must be positive")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._evicted_capacity = 0
        self._evicted_expired = 0
        self._replaced = 0

    def _expired_locked(self, now: float) -> list[V]:
        victims: list[V] = []
        # Entries are in last-use order, so the expired ones are at the front.
        while self._entries:
            key, (last_used, value) = next(iter(self._entries.items()))
            if now - last_used < self.ttl_s:
                break
            del self._entries[key]
            victims.append(value)
        self._evicted_expired += len(victims)
        return victims

    def put(self, key: str, value: V) -> None:
        now = self._clock()
        with self._lock:
            victims = self._expired_locked(now)
            old = self._entries.pop(key, None)
            if old is not None:
                victims.append(old[1])
                self._replaced += 1
            self._entries[key] = (now, value)
            while len(self._entries) > self.max_entries:
                _, (_, evicted) = self._entries.popitem(last=False)
                victims.append(evicted)
                self._evicted_capacity += 1
        _close_all(victims, keep=value)

    def lookup(self, key: str) -> V | None:
        """The live value for key (refreshing its TTL and LRU position), or None."""
        now = self._clock()
        with self._lock:
            victims = self._expired_locked(now)
            entry = self._entries.get(key)
            if entry is not None:
                self._entries[key] = (now, entry[1])
                self._entries.move_to_end(key)
        _close_all(victims)
        return None if entry is None else entry[1]

    def prune(self) -> int:
        with self._lock:
            victims = self._expired_locked(self._clock())
        _close_all(victims)
        return len(victims)

    def stats(self) -> StoreStats:
        with self._lock:
            return StoreStats(
                len(self._entries), self._evicted_capacity, self._evicted_expired, self._replaced
            )

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __getitem__(self, key: str) -> V:
        with self._lock:
            return self._entries[key][1]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __iter__(self) -> Iterator[str]:
        # A snapshot: safe to iterate from a telemetry thread while requests mutate the store.
        with self._lock:
            return iter(list(self._entries))

    def close(self) -> None:
        with self._lock:
            victims = [value for _, value in self._entries.values()]
            self._entries.clear()
        _close_all(victims)


def _close_all(values: list[V], *, keep: object = None) -> None:
    for value in values:
        if value is not keep:
            value.close()
