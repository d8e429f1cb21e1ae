"""TRUSTED_PROXY_COUNT over the real app, Redis and Mongo: behind that many proxies the
client is the forwarded address (rate-limit buckets, the webhook allow-list, generated
links); with none, a client's own X-Forwarded-* headers change nothing."""

from __future__ import annotations

import dataclasses
import random

import pytest

from services.api.app import create_app
from tests.support.users import unique_email

LIMIT = 2
PROXY = "10.9.0.1"
MONNIFY = "203.0.113.7"


def _address() -> str:
    return f"198.51.{random.randrange(256)}.{random.randrange(1, 255)}"


@pytest.fixture(scope="module")
def behind(settings):
    """An app trusting `count` proxies, with low login limits and an allow-list."""
    apps = {}

    def make(count: int):
        if count not in apps:
            apps[count] = create_app(
                dataclasses.replace(
                    settings,
                    trusted_proxy_count=count,
                    login_rate_limit=f"{LIMIT} per hour",
                    monnify_allowed_ips=(MONNIFY,),
                )
            )
        return apps[count]

    return make


def _client(app, remote: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = remote
    return client


def _login(client, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    body = {"email": unique_email(), "password": "password123"}
    return client.post("/auth/login", json=body, headers=headers).status_code


def test_without_trusted_proxies_a_forged_forwarded_for_shares_the_callers_bucket(behind):
    client = _client(behind(0), _address())
    statuses = [_login(client, forwarded=_address()) for _ in range(LIMIT + 1)]
    assert statuses == [401] * LIMIT + [429]


def test_behind_one_proxy_each_client_has_its_own_bucket(behind):
    proxy = _client(behind(1), PROXY)
    first, second = _address(), _address()
    assert [_login(proxy, first) for _ in range(LIMIT + 1)] == [401] * LIMIT + [429]
    assert _login(proxy, second) == 401  # another client behind the same proxy
    # Only the last hop is trusted: a value the client put before it is not its address.
    assert _login(proxy, f"{_address()}, {first}") == 429


def _post_webhook(client, forwarded: str | None = None):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post("/payments/monnify/webhook", json={"eventType": "x"}, headers=headers)


def test_without_trusted_proxies_the_allow_list_ignores_forwarded_for(behind, db):
    before = db.webhook_events.count_documents({})
    response = _post_webhook(_client(behind(0), PROXY), forwarded=MONNIFY)
    assert response.status_code == 403, response.get_json()
    assert db.webhook_events.count_documents({}) == before


def test_behind_one_proxy_the_allow_list_sees_the_forwarded_address(behind, db):
    proxy = _client(behind(1), PROXY)
    before = db.webhook_events.count_documents({})
    # Past the allow-list, to the signature check (the body is unsigned).
    assert _post_webhook(proxy, forwarded=MONNIFY).status_code == 401
    assert _post_webhook(proxy, forwarded=_address()).status_code == 403
    assert _post_webhook(proxy).status_code == 403  # the proxy itself is not Monnify
    assert db.webhook_events.count_documents({}) == before


@pytest.mark.parametrize(
    ("count", "base"), [(0, "http://localhost/"), (1, "https://api.example.com/")]
)
def test_generated_links_use_the_forwarded_scheme_and_host_only_behind_a_proxy(
    behind, party, count, base
):
    user = party(5000)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"}
    response = _client(behind(count), PROXY).get(
        "/wallet/transactions?limit=1", headers={**user.headers, **forwarded}
    )
    assert response.status_code == 200, response.get_json()
    assert response.headers["Link"].startswith(f"<{base}wallet/transactions?")
