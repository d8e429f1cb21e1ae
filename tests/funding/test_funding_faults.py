"""Funding when things fail: Monnify's API down while a payment is confirmed, and the
queue unreachable while a webhook comes in. Nothing Monnify reported is lost, and
nothing is credited twice."""

from __future__ import annotations

import dataclasses
import time

import pytest
import requests

from services.api.app import create_app
from services.embedded import free_port
from tests.support.funding_support import (
    credit_entries,
    funding_record,
    notification,
    pay,
    post_signed,
    sim,
)
from tests.support.monnify_sim_server import ServerThread
from tests.support.polling import wait_until


@pytest.fixture()
def monnify_down(monnify_sim):
    """Set a fault on Monnify's API; always cleared afterwards."""

    def _down(**fault):
        sim(monnify_sim, "faults", {"mode": "down", **fault})

    yield _down
    sim(monnify_sim, "faults", {"mode": "none"})


def events_of(db, funding):
    return list(db.webhook_events.find({"paymentReference": funding["paymentReference"]}))


def sim_requests(monnify_sim) -> list[dict]:
    return requests.get(f"{monnify_sim}/sim/stats", timeout=10).json()["requests"]


def test_monnify_down_during_confirmation_is_retried_until_it_is_back(
    monnify_sim, monnify_down, user, db
):
    funding = user.fund(5000)
    seen = len(sim_requests(monnify_sim))
    monnify_down(count=4)  # the first try's three calls and one more fail
    pay(monnify_sim, funding)
    user.wait_for_balance(5000)
    refused = [r for r in sim_requests(monnify_sim)[seen:] if r["status"] == 503]
    assert len(refused) == 4
    assert [e["status"] for e in events_of(db, funding)] == ["processed"]
    assert credit_entries(db, funding) == 1


def test_monnify_down_past_the_retry_window_is_left_to_reconciliation(
    monnify_sim, monnify_down, user, db, run_task
):
    funding = user.fund(5000)
    monnify_down()
    pay(monnify_sim, funding)
    failed = wait_until(
        lambda: events_of(db, funding),
        lambda events: events and events[0]["status"] == "failed",
    )
    assert "MonnifyUnavailable" in failed[0]["note"]
    assert user.balance()["balance"] == 0

    sim(monnify_sim, "faults", {"mode": "none"})
    run_task("payments.reconcile_pending")
    assert user.balance()["balance"] == 5000
    assert [e["status"] for e in events_of(db, funding)] == ["processed"]
    assert credit_entries(db, funding) == 1


@pytest.fixture(scope="module")
def gateway_without_queue(app, settings):
    """A second gateway whose broker is unreachable (its Redis for rate limits and the
    token blocklist too: the webhook route needs neither)."""
    unreachable = dataclasses.replace(settings, redis_url="redis://127.0.0.1:9/0")
    server = ServerThread(create_app(unreachable, check_database=False), free_port())
    yield server.url
    server.stop()


def test_the_queue_down_during_intake_loses_nothing(
    gateway_without_queue, monnify_sim, settings, user, db, run_task
):
    funding = user.fund(5000)
    pay(monnify_sim, funding, notify=False)
    body = notification(funding, 5000)
    response = post_signed(gateway_without_queue, body, settings.monnify_secret_key)
    assert response.status_code == 200  # stored, though it could not be enqueued
    assert [e["status"] for e in events_of(db, funding)] == ["received"]
    time.sleep(1.1)  # older than INBOX_REQUEUE_AFTER_SECONDS
    assert user.balance()["balance"] == 0

    assert run_task("payments.requeue_inbox") >= 1
    user.wait_for_balance(5000)
    wait_until(
        lambda: events_of(db, funding),
        lambda events: events[0]["status"] == "processed",
    )
    assert credit_entries(db, funding) == 1
    assert funding_record(db, funding)["status"] == "paid"
