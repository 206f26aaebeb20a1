"""A bounded worker pool: fixed workers, a bounded backlog, and a timeout on every job."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass


class QueueFull(Exception):
    pass


@dataclass(frozen=True)
class JobInput:
    """What a job needs, copied out of the session: the job never holds the session itself."""

    job_id: int
    user_id: str
    plan: str


class JobRunner:
    def __init__(
        self, *, max_workers: int = 8, max_pending: int = 64, job_timeout_s: float = 0.25
    ) -> None:
        if max_workers <= 0 or max_pending <= 0 or not job_timeout_s > 0:
            raise ValueError("max_workers, max_pending and job_timeout_s must be positive")
        self.job_timeout_s = job_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="job")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._stop = threading.Event()
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()
        self._completed = 0
        self._timed_out = 0
        self._count_lock = threading.Lock()

    def next_id(self) -> int:
        with self._ids_lock:
            return next(self._ids)

    def submit(self, job: JobInput) -> Future[bool]:
        """Queue a job, or raise QueueFull when max_pending jobs are queued or running."""
        if self._stop.is_set():
            raise QueueFull("shutting down")
        if not self._slots.acquire(blocking=False):
            raise QueueFull(f"{job.job_id}")
        try:
            future = self._executor.submit(self._run, job)
        except RuntimeError:
            self._slots.release()
            raise QueueFull("shutting down") from None
        future.add_done_callback(lambda _: self._slots.release())
        return future

    def _run(self, job: JobInput) -> bool:
        # Wait for the consumer's acknowledgement, but never longer than the job timeout: the
        # worker is back in the pool either way. Returns True when acknowledged (shutdown).
        acknowledged = self._stop.wait(self.job_timeout_s)
        with self._count_lock:
            if acknowledged:
                self._completed += 1
            else:
                self._timed_out += 1
        return acknowledged

    @property
    def timed_out(self) -> int:
        with self._count_lock:
            return self._timed_out

    def close(self) -> None:
        self._stop.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
