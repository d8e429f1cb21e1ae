"""Funding through Monnify, end to end over real HTTP: the gateway, the simulator, the
webhook, a real worker confirming with the status API, and the ledger."""

from __future__ import annotations

import time
from decimal import Decimal
from urllib.parse import quote

import pytest
import requests

from shared.monnify.signature import compute_signature
from tests.integration.conftest import unique_email

TIMEOUT = 15


@pytest.fixture()
def user(gateway):
    response = requests.post(
        f"{gateway}/auth/signup",
        json={"email": unique_email(), "password": "password123"},
        timeout=10,
    )
    assert response.status_code == 201
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def fund(gateway, headers, amount=5000, **extra):
    return requests.post(
        f"{gateway}/wallet/fund", json={"amount": amount, **extra}, headers=headers, timeout=10
    )


def pay(monnify_sim, transaction_reference, **body):
    url = f"{monnify_sim}/sim/transactions/{quote(transaction_reference, safe='')}/pay"
    response = requests.post(url, json=body or None, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def balance(gateway, headers) -> dict:
    return requests.get(f"{gateway}/wallet/balance", headers=headers, timeout=10).json()


def wait_for_balance(gateway, headers, expected) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        body = balance(gateway, headers)
        if body["balance"] == expected:
            return body
        time.sleep(0.1)
    raise AssertionError(f"balance never reached {expected}: {body}")


def test_fund_answers_the_original_shape_from_real_monnify_calls(gateway, user):
    response = fund(gateway, user, 5000)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["paymentReference"].startswith("FND-")
    assert body["transactionReference"].startswith("MNFY|")
    assert body["amount"] == 5000
    assert body["accountNumber"] and body["bankName"] and body["accountName"]
    assert body["checkoutUrl"].startswith("http") and body["expiryDate"]


def test_paid_funding_is_credited_exactly_once(gateway, monnify_sim, user, db):
    body = fund(gateway, user, 5000).json()
    pay(monnify_sim, body["transactionReference"])
    wait_for_balance(gateway, user, 5000)

    # Monnify redelivers the same notification: nothing changes.
    notify = f"{monnify_sim}/sim/transactions/{quote(body['transactionReference'], safe='')}/notify"
    requests.post(notify, json={"times": 2}, timeout=10).raise_for_status()
    time.sleep(1.5)
    assert balance(gateway, user)["balance"] == 5000
    assert db.entries.count_documents({"key": f"monnify:{body['transactionReference']}"}) == 1
    funding = db.fundings.find_one({"_id": body["paymentReference"]})
    assert funding["status"] == "paid" and funding["amountCredited"] == 500000


@pytest.mark.parametrize(
    ("paid", "status"), [(Decimal("3000.50"), "partially_paid"), (7000, "overpaid")]
)
def test_what_was_actually_paid_is_credited(gateway, monnify_sim, user, db, paid, status):
    body = fund(gateway, user, 5000).json()
    pay(monnify_sim, body["transactionReference"], amount=str(paid))
    wait_for_balance(gateway, user, paid)
    assert db.fundings.find_one({"_id": body["paymentReference"]})["status"] == status


def test_idempotency_key_replays_the_first_response(gateway, user, db):
    headers = {**user, "Idempotency-Key": "fund-attempt-1"}
    first = fund(gateway, headers, 5000)
    again = fund(gateway, headers, 5000)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert db.fundings.count_documents({"_id": first.json()["paymentReference"]}) == 1
    different = fund(gateway, headers, 6000)
    assert different.status_code == 409


@pytest.mark.parametrize(
    "payload",
    [{"amount": 19.99}, {"amount": 0}, {"amount": -5}, {"amount": "5000"}, {"amount": 10.001},
     {"amount": 100000000}, {}, {"amount": 5000, "extra": 1}, {"amount": {"$gt": 0}},
     {"amount": 5000, "currency": "EUR"}, {"amount": 5000, "email": "not-an-email"}],
)  # fmt: skip
def test_bad_fund_requests_are_400_and_create_nothing(gateway, user, db, payload):
    before = db.fundings.count_documents({})
    response = requests.post(f"{gateway}/wallet/fund", json=payload, headers=user, timeout=10)
    assert response.status_code == 400, response.text
    assert response.json()["message"]
    assert db.fundings.count_documents({}) == before


def test_unsigned_or_forged_webhooks_are_401_and_stored_nowhere(gateway, settings, db):
    body = b'{"eventType":"SUCCESSFUL_TRANSACTION","eventData":{"amountPaid":-5000}}'
    before = db.webhook_events.count_documents({})
    url = f"{gateway}/payments/monnify/webhook"
    headers = {"Content-Type": "application/json"}
    forged = compute_signature(body, "not-the-secret")
    for extra in ({}, {"monnify-signature": forged}, {"monnify-signature": ""}):
        response = requests.post(url, data=body, headers={**headers, **extra}, timeout=10)
        assert response.status_code == 401
        assert response.json()["statusCode"] == 401
    assert db.webhook_events.count_documents({}) == before


def test_signed_webhook_for_unknown_reference_is_stored_for_review(gateway, settings, db):
    body = (
        b'{"eventType":"SUCCESSFUL_TRANSACTION","eventData":{"transactionReference":'
        b'"MNFY|none","paymentReference":"FND-unknown","amountPaid":5000}}'
    )
    signature = compute_signature(body, settings.monnify_secret_key)
    response = requests.post(
        f"{gateway}/payments/monnify/webhook",
        data=body,
        headers={"Content-Type": "application/json", "Monnify-Signature": signature},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json() == {"message": "Webhook received"}
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        event = db.webhook_events.find_one({"paymentReference": "FND-unknown"})
        if event and event["status"] != "received":
            break
        time.sleep(0.1)
    assert event["status"] in ("unmatched", "failed", "unconfirmed")
