"""The Celery application: `celery -A services.worker.celery_app worker|beat`.

Delivery is at-least-once (acks_late, reject on worker lost, prefetch 1), so every task
is idempotent: the ledger's idempotency keys, not Celery, make a repeat harmless.
"""

from __future__ import annotations

import sys

from celery import Celery, Task, signals

from services.worker.runtime import runtime
from services.worker.schedule import beat_schedule
from shared.indexes import require_indexes
from shared.logs import bind_request_id, configure_logging
from shared.mongo import check_transactions, startup_db
from shared.redis_url import celery_connection
from shared.settings import ConfigError
from shared.task_queues import configure_queues
from shared.tracing import configure_tracing

try:
    _settings = runtime.settings()
except ConfigError as exc:
    sys.exit(f"configuration error: {exc}")

# Before any task runs or any client is made; forked pool processes inherit it.
configure_tracing(
    "payments-worker", _settings.otel_exporter_otlp_endpoint, _settings.otel_traces_sample_ratio
)


class BaseTask(Task):
    """Binds the enqueuing request's id to every log line; bounded retries with
    exponential backoff and jitter for the transient failures a task declares."""

    abstract = True
    max_retries = 5
    retry_backoff = True
    retry_backoff_max = 300
    retry_jitter = True

    def __call__(self, *args, **kwargs):
        bind_request_id(self.request.get("request_id") or self.request.id or "-")
        return super().__call__(*args, **kwargs)


# REDIS_URL may name Redis Sentinel: Celery then takes sentinel:// URLs and the master's
# name as a transport option (shared/redis_url.py).
_redis_url, _sentinel_options = celery_connection(_settings.redis_url)

celery = Celery(
    "payments",
    broker=_redis_url,
    backend=_redis_url,
    task_cls=BaseTask,
    include=[
        "services.worker.tasks.ledger",
        "services.worker.tasks.payments",
        "services.worker.tasks.calls",
        "services.worker.tasks.audit",
        "services.worker.tasks.payouts",
    ],
)
celery.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    result_expires=3600,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_track_started=True,
    worker_send_task_events=True,
    task_send_sent_event=True,
    broker_connection_retry_on_startup=True,
    # A task a dead worker took comes back after this long (not Redis' default hour);
    # longer than any countdown we schedule, so a delayed task is not redelivered early
    # (shared/settings.py checks it).
    broker_transport_options={"visibility_timeout": _settings.broker_visibility_timeout_seconds},
    timezone="UTC",
    enable_utc=True,
    worker_hijack_root_logger=False,
    beat_schedule=beat_schedule(_settings),
)
celery.conf.broker_transport_options.update(_sentinel_options)
celery.conf.result_backend_transport_options = dict(_sentinel_options)
configure_queues(celery)


@signals.setup_logging.connect
def _setup_logging(**_kwargs) -> None:
    configure_logging(json=_settings.log_json, level=_settings.log_level)


@signals.worker_init.connect
def _check_database(**_kwargs) -> None:
    """Money moves only in transactions, and queries need their indexes (built by
    `python -m services.manage migrate`): a database without either stops the worker."""
    try:
        with startup_db(_settings.database_url) as db:
            check_transactions(db)
            require_indexes(db)
    except ConfigError as exc:
        sys.exit(f"configuration error: {exc}")


# Task metrics and the worker's exporter; connected on import.
import services.worker.signals  # noqa: E402, F401
