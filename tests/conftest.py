"""Test servers: the MongoDB-protocol and Redis servers at DATABASE_URL / REDIS_URL when
set, otherwise embedded ones started for this session. A server that can't be reached
fails the session with a clear message; nothing is skipped."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

# Before anything imports prometheus-client, which picks multi-process mode at import:
# the session's app and in-process worker share one metrics directory, as a gunicorn
# server's workers do.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="test-metrics-")
    atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], True)

import pymongo
import pytest
import redis
from argon2 import PasswordHasher

from services.embedded import EmbeddedServer, free_port, start_mongo, start_redis
from services.manage import migrate
from shared import passwords
from shared.mongo import get_db
from shared.settings import Settings, load_settings
from shared.tracing import configure_tracing
from tests.support.span_recorder import SPANS

# Before any MongoDB or Redis client exists: instrumentation only sees clients made after.
configure_tracing("payments-tests", "", processor=SPANS)

# The app, worker, simulator and user fixtures, for every folder's tests.
pytest_plugins = ["tests.support.fixtures"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test `integration` when it reaches the session's servers (any fixture built
    on `servers`) or its module says so (it starts servers of its own), `unit` otherwise:
    what a test needs decides, not the folder it lives in."""
    for item in items:
        reaches_servers = "servers" in item.fixturenames
        if (
            reaches_servers
            or item.get_closest_marker("integration")
            or item.get_closest_marker("stack")
        ):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


def _reachable_mongo(url: str) -> None:
    try:
        with pymongo.MongoClient(url, serverSelectionTimeoutMS=3000) as client:
            client.admin.command("ping")
    except pymongo.errors.PyMongoError as exc:
        pytest.fail(f"MongoDB server at DATABASE_URL is unreachable: {exc}", pytrace=False)


def _reachable_redis(url: str) -> None:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis server at REDIS_URL is unreachable: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, str]]:
    """URLs of the session's real servers, started here when not given."""
    started: list[EmbeddedServer] = []
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    try:
        if not database_url:
            # Test commands on: fault tests set failpoints (scoped to their own client).
            started.append(start_mongo(None, database="payment_calls_test", test_commands=True))
            database_url = started[-1].url
        if not redis_url:
            started.append(start_redis())
            redis_url = started[-1].url
        _reachable_mongo(database_url)
        _reachable_redis(redis_url)
        yield {"database_url": database_url, "redis_url": redis_url}
    finally:
        for server in reversed(started):
            server.stop()


# The environment every process of the test session sees (the app, the in-process
# worker, subprocesses), besides the server URLs. Timings are short so tests run in seconds.
TEST_ENV = {
    "APP_ENV": "test",
    "LOG_JSON": "true",
    "SIGNUP_RATE_LIMIT": "1000 per minute",
    "LOGIN_RATE_LIMIT": "1000 per minute",
    # Calls: per-second billing in 2-second blocks, so a call's life takes seconds.
    "CALL_BILLING_INCREMENT_SECONDS": "1",
    "CALL_HOLD_BLOCK_SECONDS": "2",
    "CALL_RENEW_LEAD_SECONDS": "1",
    "CALL_MAX_CONCURRENT": "2",
    "CALL_MAX_DURATION_SECONDS": "30",
    "CALL_SWEEP_INTERVAL_SECONDS": "1",
    "CALL_SWEEP_GRACE_SECONDS": "2",
    "CALL_HOLD_EXPIRY_GRACE_SECONDS": "600",
    # Funding: a webhook's confirmation is retried for 3 s; reconciliation and the inbox
    # requeue job take anything older than a second.
    "CONFIRMATION_RETRY_WINDOW_SECONDS": "3",
    "RECONCILE_PENDING_AFTER_SECONDS": "1",
    "RECONCILE_CREDITED_EVERY_SECONDS": "1",
    "INBOX_REQUEUE_AFTER_SECONDS": "1",
    # Payouts: a fee to see it held and captured, limits small enough to reach, and the
    # poller asks about a withdrawal after a second of silence.
    "WITHDRAWAL_FEE": "10",
    "WITHDRAWAL_MIN": "100",
    "WITHDRAWAL_MAX": "50000",
    "WITHDRAWAL_DAILY_MAX": "60000",
    "WITHDRAWAL_POLL_AFTER_SECONDS": "1",
    # The periodic ledger check sees a movement as soon as it commits.
    "INVARIANTS_SETTLE_SECONDS": "0",
    # Operations: no worker exporter on a fixed port (tests start their own), a fast
    # heartbeat on event streams.
    "WORKER_METRICS_PORT": "0",
    "PROMETHEUS_MULTIPROC_DIR": os.environ["PROMETHEUS_MULTIPROC_DIR"],
    "SSE_HEARTBEAT_SECONDS": "0.5",
}


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Argon2id at its production cost (64 MiB, 3 passes) takes about 0.1 s of both cores
    a hash, and the session signs hundreds of users up and logs them in: in this process
    passwords hash at the lowest cost. The tests about the parameters themselves hash
    with the production hasher (`production_hasher`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        )
        yield


# The hasher shared/passwords.py made, kept before the session lowers the cost.
_PRODUCTION_HASHER = passwords._hasher


@pytest.fixture()
def production_hasher(monkeypatch) -> None:
    """Hash as production does, for the tests about the hashing parameters."""
    monkeypatch.setattr(passwords, "_hasher", _PRODUCTION_HASHER)


@pytest.fixture(scope="session")
def test_env(servers: dict[str, str]) -> dict[str, str]:
    """Fixed for the session: the in-process worker reads its settings once."""
    return {
        **TEST_ENV,
        "DATABASE_URL": servers["database_url"],
        "REDIS_URL": servers["redis_url"],
        # Where the session's gateway and Monnify simulator listen, when a test starts them.
        "PORT": str(free_port()),
        "MONNIFY_SIM_PORT": str(free_port()),
    }


@pytest.fixture(scope="session")
def settings(test_env: dict[str, str]) -> Settings:
    return load_settings(test_env)


@pytest.fixture(scope="session")
def db(settings: Settings):
    database = get_db(settings.database_url)
    migrate(database)  # as a release does before its services start
    return database


@pytest.fixture(scope="session")
def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)
