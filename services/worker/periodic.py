"""Periodic (beat) jobs never overlap themselves: each run takes a non-blocking Redis lock
named after its task, and a run that finds it taken skips (returns None) instead of
doing the same work twice over. The lock outlives the run's hard time limit, so it can't
expire under a run still going. It only saves work: the jobs stay idempotent.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

from celery import Task
from redis.exceptions import LockError

from services.worker import context
from services.worker.celery_app import celery
from shared.logs import get_logger

log = get_logger(__name__)

LOCK_PREFIX = "lock:periodic:"
LOCK_SECONDS = 900
# Killed (prefork pool) before its lock expires; the next beat tick starts afresh.
TIME_LIMIT_SECONDS = LOCK_SECONDS - 60


def run_alone(name: str, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`job(*args, **kwargs)` unless another run of `name` holds the lock (None)."""
    lock = context.redis_client().lock(LOCK_PREFIX + name, timeout=LOCK_SECONDS, blocking=False)
    if not lock.acquire():
        log.info("periodic_job_skipped", task=name, reason="previous run still going")
        return None
    try:
        return job(*args, **kwargs)
    finally:
        with contextlib.suppress(LockError):  # expired: the time limit makes that rare
            lock.release()


def periodic(name: str) -> Callable[[Callable[..., Any]], Task]:
    """Register a beat job as the task `name`, run alone and time-limited."""

    def register(job: Callable[..., Any]) -> Task:
        @functools.wraps(job)
        def alone(*args: Any, **kwargs: Any) -> Any:
            return run_alone(name, job, *args, **kwargs)

        return celery.task(name=name, time_limit=TIME_LIMIT_SECONDS)(alone)

    return register
