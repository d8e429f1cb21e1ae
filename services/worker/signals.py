"""Celery signal handlers: task metrics (count by outcome, retries, duration), and the
worker's Prometheus exporter, started in the worker's main process once it is ready.

The request id is bound by BaseTask (services/worker/celery_app.py), not here: it must
be bound in the thread or process that runs the task, before its first log line.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Task, signals

from services.worker.metrics import start_exporter
from services.worker.runtime import runtime
from shared.metrics import TASK_DURATION, TASK_RETRIES, TASKS

_started: dict[str, float] = {}  # task id -> perf_counter at start (threads pools share it)


def _name(task: Task | None, sender: Any = None) -> str:
    return getattr(task, "name", None) or getattr(sender, "name", None) or "unknown"


@signals.task_prerun.connect
def _task_started(task_id: str, task: Task, **_kwargs: Any) -> None:
    _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_finished(task_id: str, task: Task, state: str | None = None, **_kwargs: Any) -> None:
    name = _name(task)
    TASKS.labels(name, (state or "unknown").lower()).inc()
    started = _started.pop(task_id, None)
    if started is not None:
        TASK_DURATION.labels(name).observe(time.perf_counter() - started)


@signals.task_retry.connect
def _task_retried(sender: Task | None = None, **_kwargs: Any) -> None:
    TASK_RETRIES.labels(_name(sender)).inc()


@signals.worker_ready.connect
def _serve_metrics(sender: Any = None, **_kwargs: Any) -> None:
    """Only `celery worker` sends this, in its main process, after the pool started."""
    start_exporter(runtime, sender.app if sender is not None else None)
