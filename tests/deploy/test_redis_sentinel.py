"""REDIS_URL naming a real Sentinel (valkey-server in sentinel mode, from the same wheel
as the embedded Valkey, watching a Valkey of its own): our client, Celery's broker and
result backend, and the rate limiter's storage all find the master through it."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from kombu import Connection
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from services.api.app import create_app
from services.embedded import free_port, start_redis, valkey_binary
from shared.redis_conn import connect
from shared.redis_url import celery_connection, limiter_storage

# Real servers of its own, not the session's.
pytestmark = pytest.mark.integration

MASTER = "payments-master"
SENTINEL_READY_SECONDS = 30


@pytest.fixture(scope="module")
def sentinel_url(tmp_path_factory) -> Iterator[str]:
    master = start_redis()
    master_port = int(master.url.rsplit(":", 1)[1].split("/")[0])
    port = free_port()
    config = Path(tmp_path_factory.mktemp("sentinel")) / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 1\n"
        f"sentinel down-after-milliseconds {MASTER} 1000\n"
    )
    sentinel = subprocess.Popen(
        [valkey_binary(), str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_master(port, master_port)
        yield f"redis+sentinel://127.0.0.1:{port}/{MASTER}/3"
    finally:
        sentinel.terminate()
        sentinel.wait(timeout=10)
        master.stop()


def _wait_for_master(port: int, master_port: int) -> None:
    client = redis.Redis(port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + SENTINEL_READY_SECONDS
    while time.monotonic() < deadline:
        try:
            _host, found = client.sentinel_get_master_addr_by_name(MASTER)
            if int(found) == master_port:
                return
        except (redis.RedisError, TypeError):
            pass
        time.sleep(0.2)
    pytest.fail(f"the sentinel on port {port} never named the master", pytrace=False)


def test_our_client_reaches_the_master_through_the_sentinel(sentinel_url):
    client = connect(sentinel_url)
    client.set("sentinel-test", "ok")
    assert client.get("sentinel-test") == b"ok"
    assert client.connection_pool.connection_kwargs["db"] == 3


def test_celery_sends_and_stores_results_through_the_sentinel(sentinel_url):
    broker, options = celery_connection(sentinel_url)
    with Connection(broker, transport_options=options) as connection:
        queue = connection.SimpleQueue("sentinel-queue")
        queue.put({"hello": "world"})
        message = queue.get(timeout=10)
        message.ack()
        assert message.payload == {"hello": "world"}
        queue.close()
    app = Celery("sentinel-test", broker=broker, backend=broker)
    app.conf.broker_transport_options = options
    app.conf.result_backend_transport_options = options
    app.backend.store_result("sentinel-task", {"answer": 42}, "SUCCESS")
    assert app.AsyncResult("sentinel-task").get(timeout=10) == {"answer": 42}


def test_the_rate_limiter_counts_through_the_sentinel(sentinel_url):
    uri, options = limiter_storage(sentinel_url)
    limiter = FixedWindowRateLimiter(storage_from_string(uri, **options))
    limit = parse("2 per minute")
    assert [limiter.hit(limit, "sentinel-test") for _ in range(3)] == [True, True, False]


def test_the_gateway_is_ready_and_limits_rates_through_the_sentinel(sentinel_url, settings, db):
    app = create_app(
        dataclasses.replace(settings, redis_url=sentinel_url, login_rate_limit="1/minute")
    )
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    answers = [
        client.post("/auth/login", json={"email": "nobody@example.com", "password": "x" * 8})
        for _ in range(2)
    ]
    assert [answer.status_code for answer in answers] == [401, 429]
