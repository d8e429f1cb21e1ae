from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import requests
from celery import Celery
from flask import Flask
from flask.testing import FlaskClient

from services.api.app import create_app
from services.monnify_sim.app import create_app as sim_app
from services.monnify_sim.config import load_sim_config
from shared.ledger import Ledger
from shared.runtime import Runtime
from tests.support import users
from tests.support.monnify_sim_server import (
    TEST_SIM_CONFIG,
    ServerThread,
    SimHarness,
    WebhookReceiver,
)
from tests.support.users import User, unique_email


@pytest.fixture(scope="session")
def app(settings, db) -> Flask:
    return create_app(settings)


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def signup(client: FlaskClient):
    """Sign a new user up; returns (headers, body)."""

    def _signup(email: str | None = None, password: str = "password123"):
        response = client.post(
            "/auth/signup", json={"email": email or unique_email(), "password": password}
        )
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        return {"Authorization": f"Bearer {body['access_token']}"}, body

    return _signup


@pytest.fixture(scope="session")
def runtime(settings) -> Runtime:
    """What the gateway and the worker would build for the test settings."""
    return Runtime(lambda: settings)


@pytest.fixture()
def ledger(runtime) -> Ledger:
    """The ledger the gateway and worker use (test_ledger.py builds its own)."""
    return runtime.ledger()


@pytest.fixture()
def party(signup, ledger):
    """Make a user signed up through the in-process app whose NGN wallet holds `kobo`."""

    def make(kobo: int = 0) -> User:
        _, body = signup()
        user = User.signed_up(body)
        if kobo:
            ledger.credit(f"test:fund:{uuid.uuid4().hex}", user.wallet, kobo)
        return user

    return make


@pytest.fixture()
def user(gateway) -> User:
    """A user signed up over HTTP with the session's gateway."""
    return users.signup(gateway)


@pytest.fixture()
def admin(gateway, db) -> User:
    """A user signed up over HTTP with the session's gateway, holding the admin role."""
    return users.make_admin(db, users.signup(gateway))


# The simulator tests' own simulator (one a module), sending webhooks to a receiver of theirs.
@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def harness(receiver: WebhookReceiver) -> Iterator[SimHarness]:
    sim = SimHarness(receiver.url)
    yield sim
    sim.stop()


@pytest.fixture()
def sim(harness: SimHarness, receiver: WebhookReceiver) -> SimHarness:
    """The module's simulator, reset, with no webhooks received yet."""
    harness.reset()
    receiver.clear()
    return harness


@pytest.fixture(scope="session")
def worker_celery(test_env) -> Celery:
    """The worker's Celery app with the session's settings. It reads them once, on import,
    so every test reaches it through this fixture: whichever test asks first, in any order,
    the app is configured for the session's servers."""
    os.environ.update(test_env)
    # Before the app exists: registers celery.ping, which start_worker checks for.
    import celery.contrib.testing.tasks

    from services.worker.celery_app import celery

    return celery


@pytest.fixture(scope="session")
def celery_worker(worker_celery: Celery, db):
    """A real Celery worker, in this process on threads, consuming from the session's
    Redis (Redash's way of testing tasks): tasks run as they do in production."""
    from celery.contrib.testing.worker import start_worker

    with start_worker(worker_celery, pool="threads", concurrency=4, loglevel="INFO"):
        yield worker_celery


@pytest.fixture(scope="session")
def monnify_sim(settings):
    """The Monnify simulator over real HTTP at settings.monnify_base_url, delivering its
    webhooks to settings.monnify_webhook_url (the session's gateway server)."""
    server = ServerThread(sim_app(load_sim_config(settings)), settings.monnify_sim_port)
    requests.post(f"{server.url}/sim/config", json=TEST_SIM_CONFIG, timeout=5).raise_for_status()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def gateway(app, settings, monnify_sim, celery_worker):
    """The gateway over real HTTP on settings.port, with the simulator and a real worker:
    a payment travels sim -> webhook -> gateway -> queue -> worker -> sim status API."""
    server = ServerThread(app, settings.port)
    yield server.url
    server.stop()


@pytest.fixture()
def run_task(celery_worker):
    """Run a task by name on the session's real worker and return its result."""

    def _run(name: str, **kwargs):
        return celery_worker.send_task(name, kwargs=kwargs).get(timeout=60)

    return _run
