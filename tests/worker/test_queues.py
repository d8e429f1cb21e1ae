"""Queues by urgency with the workers `make run` starts: a call's task runs while the
payments queue is flooded and its worker can't take any of it."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from bson import ObjectId
from celery import Celery

from services.api.queue import celery_client_for
from services.devstack import Child, LaunchConfig, Output, process_specs, spawn, stop_all
from shared.task_queues import CALLS, PAYMENTS, QUEUES, configure_queues
from tests.support.polling import wait_until
from tests.support.server_urls import redis_database

FLOOD = 300


@pytest.fixture()
def broker_url(servers) -> str:
    url = redis_database(servers["redis_url"], "queues")
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture()
def workers(test_env, db, broker_url, tmp_path: Path) -> Iterator[dict[str, Child]]:
    """The calls and payments workers, as the launcher runs them, one process each."""
    config = LaunchConfig(tmp_path, None, None, dict.fromkeys(QUEUES, 1))
    specs = {spec.name: spec for spec in process_specs(config, 0)}
    env = {**os.environ, **test_env, "REDIS_URL": broker_url}
    with (tmp_path / "workers.log").open("w") as log:
        output = Output(log)
        started = {
            queue: spawn(specs[f"worker-{queue}"], env, output) for queue in (CALLS, PAYMENTS)
        }
        try:
            yield started
        finally:
            stop_all(list(started.values()), output)


def _wait_until_answering(app: Celery, queues: tuple[str, ...]) -> None:
    nodes = {f"{queue}@{socket.gethostname()}" for queue in queues}

    def answering() -> bool:
        replies = app.control.ping(timeout=1)
        return nodes <= {name for reply in replies for name in reply}

    wait_until(answering, timeout=90, interval=0.5)


def test_a_call_task_runs_while_the_payments_queue_is_flooded(workers, broker_url):
    sender = Celery("test-sender", broker=broker_url, backend=broker_url)
    configure_queues(sender)
    _wait_until_answering(sender, (CALLS, PAYMENTS))
    workers[PAYMENTS].signal(signal.SIGSTOP)  # busy elsewhere: takes nothing from its queue
    broker = redis.Redis.from_url(broker_url)
    try:
        for _ in range(FLOOD):  # webhooks, enqueued by the gateway's client
            celery_client_for(broker_url).send_task(
                "payments.process_event", kwargs={"event_id": str(ObjectId())}
            )

        swept = sender.send_task("calls.sweep").get(timeout=60)

        assert isinstance(swept, int)
        # At most the one message the stopped worker's pending fetch took before it stopped.
        assert broker.llen(PAYMENTS) >= FLOOD - 1
    finally:
        workers[PAYMENTS].signal(signal.SIGCONT)
    # Resumed, the payments worker drains its own queue.
    wait_until(lambda: broker.llen(PAYMENTS) == 0, timeout=120, interval=0.5)
