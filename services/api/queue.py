"""Enqueue worker tasks by name. The gateway never imports worker modules; it only needs
the broker and the task's name, and passes the request id along in the message headers."""

from __future__ import annotations

from functools import cache
from typing import Any

from celery import Celery

from services.api.context import settings
from shared.logs import current_request_id, get_logger
from shared.redis_url import celery_connection
from shared.task_queues import configure_queues

log = get_logger(__name__)


@cache
def celery_client_for(redis_url: str) -> Celery:
    """The gateway's Celery client for the broker at `redis_url`: it sends tasks by name,
    on the queues the worker's routes name."""
    broker_url, sentinel_options = celery_connection(redis_url)
    app = Celery("gateway", broker=broker_url)
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_transport_options = {"max_retries": 1, **sentinel_options}
    configure_queues(app)  # the worker's routes: a task lands on the queue its workers read
    return app


def celery_client() -> Celery:
    return celery_client_for(settings().redis_url)


def enqueue(task_name: str, *, countdown: float | None = None, **kwargs: Any) -> str:
    """Send a task; raises kombu/redis errors if the broker is unreachable."""
    result = celery_client().send_task(
        task_name,
        kwargs=kwargs,
        countdown=countdown,
        headers={"request_id": current_request_id()},
        retry=False,
    )
    return result.id


def enqueue_or_leave(task_name: str, *, countdown: float | None = None, **kwargs: Any) -> bool:
    """Send a task whose work is already recorded in MongoDB; if the broker is down, log
    it and carry on: a beat job (inbox requeue, call sweeper) sends it later."""
    try:
        enqueue(task_name, countdown=countdown, **kwargs)
    except Exception as exc:  # any broker failure: the stored record is the guarantee
        log.warning("enqueue_failed", task=task_name, error=type(exc).__name__, arguments=kwargs)
        return False
    return True
