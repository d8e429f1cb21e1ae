"""Periodic (beat) jobs never overlap themselves: each run takes a non-blocking Redis lock
named after its task, and a run that finds it taken skips (returns None) instead of
doing the same work twice over. The lock is short-lived and kept alive by a thread of the
run while it goes: a run killed with its process (SIGKILL, OOM, a lost container) frees
it within LOCK_SECONDS, not after the longest a job may run, so the call sweeper is not
stopped for minutes by one killed run. It only saves work: the jobs stay idempotent.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from typing import Any

from celery import Task
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from services.worker.celery_app import celery
from services.worker.runtime import runtime
from shared.logs import get_logger

log = get_logger(__name__)

LOCK_PREFIX = "lock:periodic:"
LOCK_SECONDS = 30
# Renewed this often, so a live run's lock survives two missed renewals (a Redis stall).
RENEW_EVERY_SECONDS = LOCK_SECONDS / 3
# A run stuck longer is killed (prefork pool); the next beat tick starts afresh.
TIME_LIMIT_SECONDS = 840


def run_alone(name: str, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`job(*args, **kwargs)` unless another run of `name` holds the lock (None)."""
    # Not thread-local: the keeper thread renews it with the token this thread took.
    lock = runtime.redis_client().lock(
        LOCK_PREFIX + name, timeout=LOCK_SECONDS, blocking=False, thread_local=False
    )
    if not lock.acquire():
        log.info("periodic_job_skipped", task=name, reason="previous run still going")
        return None
    stop = threading.Event()
    keeper = threading.Thread(target=_keep_alive, args=(lock, stop), daemon=True)
    keeper.start()
    try:
        return job(*args, **kwargs)
    finally:
        stop.set()
        keeper.join()
        with contextlib.suppress(LockError):  # expired during a Redis outage
            lock.release()


def _keep_alive(lock: Lock, stop: threading.Event) -> None:
    while not stop.wait(RENEW_EVERY_SECONDS):
        with contextlib.suppress(LockError, RedisError):  # the next renewal tries again
            lock.reacquire()


def periodic(name: str) -> Callable[[Callable[..., Any]], Task]:
    """Register a beat job as the task `name`, run alone and time-limited."""

    def register(job: Callable[..., Any]) -> Task:
        @functools.wraps(job)
        def alone(*args: Any, **kwargs: Any) -> Any:
            return run_alone(name, job, *args, **kwargs)

        return celery.task(name=name, time_limit=TIME_LIMIT_SECONDS)(alone)

    return register
