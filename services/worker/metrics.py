"""The worker's Prometheus exporter: the samples every pool process wrote (multi-process
mode), plus state read at scrape time, so it is right even while no task runs:

- celery_queue_length{queue}: messages waiting in each queue this worker consumes (a
  growing backlog is what an alert must see, and a task sampling it would wait in it);
- calls_active: calls open now;
- audit_outbox_pending: audit records not yet sealed into the chain.

One exporter per worker process (one per queue), on WORKER_METRICS_PORT; `up` of its
scrape target is the "worker alive" signal for its queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import redis
from celery import Celery
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from pymongo.database import Database
from pymongo.errors import PyMongoError

from shared import audit
from shared.calls.model import OPEN
from shared.logs import get_logger
from shared.metrics import MergingCollector, multiprocess_dir
from shared.runtime import Runtime

log = get_logger(__name__)

# kombu's Redis transport keeps priorities 3, 6 and 9 of a queue in lists of their own.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def queue_names(app: Celery) -> list[str]:
    """The queues this worker consumes (`-Q`, else all): each queue's backlog is reported
    once, by the exporter of the worker that drains it."""
    return sorted(app.amqp.queues.consume_from)


class StateCollector:
    """Gauges read from Redis and MongoDB when Prometheus scrapes."""

    def __init__(self, redis_client: redis.Redis, db: Database, queues: Iterable[str]):
        self.redis = redis_client
        self.db = db
        self.queues = list(queues)

    def collect(self) -> Iterator[Metric]:
        try:
            yield self._queue_lengths()
        except redis.RedisError as exc:
            log.warning("metrics_queue_length_unavailable", error=type(exc).__name__)
        try:
            yield from self._database_gauges()
        except PyMongoError as exc:
            log.warning("metrics_database_gauges_unavailable", error=type(exc).__name__)

    def _queue_lengths(self) -> Metric:
        gauge = GaugeMetricFamily(
            "celery_queue_length", "Messages waiting in a Celery queue", labels=["queue"]
        )
        for queue in self.queues:
            with self.redis.pipeline(transaction=False) as pipe:
                for suffix in _PRIORITY_SUFFIXES:
                    pipe.llen(queue + suffix)
                gauge.add_metric([queue], sum(pipe.execute()))
        return gauge

    def _database_gauges(self) -> Iterator[Metric]:
        active = self.db.calls.count_documents({"status": OPEN})
        yield GaugeMetricFamily("calls_active", "Calls open now", value=active)
        pending = audit.pending_count(self.db)
        yield GaugeMetricFamily(
            "audit_outbox_pending", "Audit records waiting for the sealer", value=pending
        )


def worker_registry(runtime: Runtime, app: Celery) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    if directory is not None:
        registry.register(MergingCollector(directory))  # also folds exited pool processes' files
    else:
        registry.register(REGISTRY)  # this process's own samples only
    registry.register(StateCollector(runtime.redis_client(), runtime.db(), queue_names(app)))
    return registry


def start_exporter(runtime: Runtime, app: Celery | None) -> None:
    """Serve /metrics on WORKER_METRICS_PORT. A port in use is logged, not fatal: the
    worker's work matters more than its metrics."""
    settings = runtime.settings()
    if not settings.worker_metrics_port or app is None:
        return
    if multiprocess_dir() is None:
        log.warning("worker_metrics_single_process", hint="set PROMETHEUS_MULTIPROC_DIR")
    try:
        start_http_server(settings.worker_metrics_port, registry=worker_registry(runtime, app))
    except OSError as exc:
        log.error("worker_metrics_not_served", port=settings.worker_metrics_port, error=str(exc))
        return
    log.info("worker_metrics_serving", port=settings.worker_metrics_port)
