"""The auth rate limits' counters in Redis, on fakeredis: one per client address and one
per email (shared by every address, the same however the email is cased or padded,
hashed so that no key names it), each expiring with its window. That the limits refuse
the request past them, through the real app and Redis: test_auth.py."""

from __future__ import annotations

import dataclasses

import fakeredis
import pytest
from flask import Flask

from services.api import app as app_module
from services.api.app import create_app
from shared.settings import load_settings

EMAIL = "someone@example.com"


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeRedis:
    """The limiter's storage: a fakeredis of the test's own instead of REDIS_URL."""
    redis_client = fakeredis.FakeRedis()
    storage = ("redis://fakeredis:6379", {"connection_pool": redis_client.connection_pool})
    monkeypatch.setattr(app_module, "limiter_storage", lambda _url: storage)
    return redis_client


@pytest.fixture()
def app(fake) -> Flask:
    limit = "3 per hour"
    # The session's logging (JSON), as every app of the suite configures it.
    base = load_settings({"APP_ENV": "test", "LOG_JSON": "true"})
    settings = dataclasses.replace(base, signup_rate_limit=limit, login_rate_limit=limit)
    return create_app(settings, check_database=False)


def login_from(app: Flask, address: str, body: dict) -> int:
    """A login refused by validation before any database read: it still counts."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client.post("/auth/login", json=body).status_code


def counters(fake: fakeredis.FakeRedis) -> dict[str, int]:
    return {key.decode(): int(fake.get(key)) for key in fake.keys("*")}


def test_each_address_and_each_email_has_one_counter(app, fake):
    login_from(app, "10.0.0.1", {"email": EMAIL.upper(), "password": "short"})
    login_from(app, "10.0.0.2", {"email": f"  {EMAIL} ", "password": "short"})

    found = counters(fake)
    by_address = {key: n for key, n in found.items() if "/10.0.0." in key}
    by_email = {key: n for key, n in found.items() if "/email:" in key}
    assert sorted(by_address.values()) == [1, 1]
    assert list(by_email.values()) == [2]  # both addresses, one email however written
    assert len(found) == 3
    assert not any(EMAIL in key.lower() for key in found)


def test_a_body_without_an_email_counts_against_its_address_only(app, fake):
    assert login_from(app, "10.0.0.3", {"password": "password123"}) == 400
    assert [key for key in counters(fake) if "/email:" in key] == []
    assert [key for key in counters(fake) if "/10.0.0.3/" in key]


def test_every_counter_expires_with_its_window(app, fake):
    login_from(app, "10.0.0.4", {"email": EMAIL, "password": "short"})
    for key in fake.keys("*"):
        assert 0 < fake.ttl(key) <= 3600, key
