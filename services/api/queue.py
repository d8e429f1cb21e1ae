"""Enqueue worker tasks by name. The gateway never imports worker modules; it only needs
the broker and the task's name, and passes the request id along in the message headers."""

from __future__ import annotations

from functools import cache
from typing import Any

from celery import Celery

from services.api.runtime import runtime
from shared.logs import get_logger, task_headers
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
    return celery_client_for(runtime.settings().redis_url)


def enqueue_or_leave(task_name: str, **kwargs: Any) -> bool:
    """Send a task, carrying the request id, whose work is already recorded in MongoDB
    (see `send_task_or_leave`)."""
    return send_task_or_leave(task_name, kwargs=kwargs, headers=task_headers())


def send_task_or_leave(name: str, **options: Any) -> bool:
    """Celery's `send_task` for work already recorded in MongoDB. The broker is not
    retried (a request does not wait for it): if it is down, log it and carry on, a beat
    job (inbox requeue, call sweeper) sends it later."""
    try:
        celery_client().send_task(name, retry=False, **options)
    except Exception as exc:  # any broker failure: the stored record is the guarantee
        log.warning(
            "enqueue_failed", task=name, error=type(exc).__name__, arguments=options.get("kwargs")
        )
        return False
    return True
