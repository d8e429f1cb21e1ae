from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from services.api.app import create_app
from services.monnify_sim.app import create_app as sim_app
from services.monnify_sim.config import load_sim_config
from shared.ledger import Ledger
from tests.integration import funding_support
from tests.integration.calls_support import Party, new_party
from tests.integration.funding_support import unique_email
from tests.integration.monnify_sim_server import (
    TEST_SIM_CONFIG,
    ServerThread,
    SimHarness,
    WebhookReceiver,
)


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


@pytest.fixture()
def ledger(settings) -> Ledger:
    """The ledger the gateway and worker use (test_ledger.py builds its own)."""
    return Ledger.from_settings(settings)


@pytest.fixture()
def party(signup, ledger):
    """Make a signed-up user whose NGN wallet holds `kobo` (calls_support.Party)."""

    def make(kobo: int = 0) -> Party:
        return new_party(signup, ledger, kobo)

    return make


@pytest.fixture()
def user(gateway) -> funding_support.User:
    """A user signed up over HTTP with the session's gateway."""
    return funding_support.signup(gateway)


@pytest.fixture()
def admin(gateway, db) -> funding_support.User:
    """A user signed up over HTTP with the session's gateway, holding the admin role."""
    return funding_support.make_admin(db, funding_support.signup(gateway))


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
def celery_worker(test_env, db):
    """A real Celery worker, in this process on threads, consuming from the session's
    Redis (Redash's way of testing tasks): tasks run as they do in production."""
    os.environ.update(test_env)
    import celery.contrib.testing.tasks  # registers celery.ping for the start-up check
    from celery.contrib.testing.worker import start_worker

    from services.worker.celery_app import celery

    with start_worker(celery, pool="threads", concurrency=4, loglevel="INFO"):
        yield celery


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
