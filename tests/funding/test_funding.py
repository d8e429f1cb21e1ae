"""Funding through Monnify, end to end over real HTTP: the gateway, the simulator, the
webhook, a real worker confirming with the status API, and the ledger."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from decimal import Decimal

import pytest
import requests

from services.api.app import create_app
from shared.monnify.signature import compute_signature, compute_transaction_hash
from tests.support.funding_support import (
    WEBHOOK_PATH,
    credit_entries,
    funding_record,
    notification,
    notify,
    pay,
    post_signed,
    reverse,
    sim,
)
from tests.support.polling import wait_until


def event_status(db, funding):
    return wait_until(
        lambda: [e["status"] for e in db.webhook_events.find(_events_of(funding))],
        lambda statuses: statuses and "received" not in statuses,
    )


def _events_of(funding):
    return {"paymentReference": funding["paymentReference"]}


def test_fund_answers_the_original_shape_from_real_monnify_calls(user):
    body = user.fund(5000)
    assert body["paymentReference"].startswith("FND-")
    assert body["transactionReference"].startswith("MNFY|")
    assert body["amount"] == 5000
    assert body["accountNumber"] and body["bankName"] and body["accountName"]
    assert body["checkoutUrl"].startswith("http") and body["expiryDate"]


def test_paid_funding_is_credited_exactly_once(monnify_sim, user, db):
    funding = user.fund(5000)
    pay(monnify_sim, funding)
    user.wait_for_balance(5000)

    # Monnify redelivers the same notification: nothing changes.
    notify(monnify_sim, funding, times=2)
    time.sleep(1.5)
    assert user.balance()["balance"] == 5000
    assert credit_entries(db, funding) == 1
    record = funding_record(db, funding)
    assert record["status"] == "paid" and record["amountCredited"] == 500000


@pytest.mark.parametrize(
    ("paid", "status"), [(Decimal("3000.50"), "partially_paid"), (7000, "overpaid")]
)
def test_what_was_actually_paid_is_credited(monnify_sim, user, db, paid, status):
    funding = user.fund(5000)
    pay(monnify_sim, funding, amount=str(paid))
    user.wait_for_balance(paid)
    assert funding_record(db, funding)["status"] == status


def test_idempotency_key_replays_the_first_response(user, db):
    headers = {"Idempotency-Key": "fund-attempt-1"}
    first = user.post("/wallet/fund", {"amount": 5000}, headers=headers)
    again = user.post("/wallet/fund", {"amount": 5000}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert db.fundings.count_documents({"_id": first.json()["paymentReference"]}) == 1
    different = user.post("/wallet/fund", {"amount": 6000}, headers=headers)
    assert different.status_code == 409


@pytest.mark.parametrize(
    "payload",
    [{"amount": 19.99}, {"amount": 0}, {"amount": -5}, {"amount": "5000"}, {"amount": 10.001},
     {"amount": 100000000}, {}, {"amount": 5000, "extra": 1}, {"amount": {"$gt": 0}},
     {"amount": 5000, "currency": "EUR"}, {"amount": 5000, "email": "not-an-email"}],
)  # fmt: skip
def test_bad_fund_requests_are_400_and_create_nothing(user, db, payload):
    before = db.fundings.count_documents({})
    response = user.post("/wallet/fund", payload)
    assert response.status_code == 400, response.text
    assert response.json()["message"]
    assert db.fundings.count_documents({}) == before


def test_unsigned_or_forged_webhooks_are_401_and_stored_nowhere(gateway, db):
    body = b'{"eventType":"SUCCESSFUL_TRANSACTION","eventData":{"amountPaid":-5000}}'
    before = db.webhook_events.count_documents({})
    headers = {"Content-Type": "application/json"}
    forged = compute_signature(body, "not-the-secret")
    for extra in ({}, {"monnify-signature": forged}, {"monnify-signature": ""}):
        response = requests.post(
            f"{gateway}{WEBHOOK_PATH}", data=body, headers={**headers, **extra}, timeout=10
        )
        assert response.status_code == 401
        assert response.json()["statusCode"] == 401
    assert db.webhook_events.count_documents({}) == before


def test_signed_webhook_for_unknown_reference_is_stored_for_review(gateway, settings, db):
    unknown = {"transactionReference": "MNFY|none", "paymentReference": "FND-unknown"}
    response = post_signed(gateway, notification(unknown, 5000), settings.monnify_secret_key)
    assert response.status_code == 200
    assert response.json() == {"message": "Webhook received"}
    assert event_status(db, unknown) == ["unmatched"]


DEEP = 10_000  # past the interpreter's recursion limit, under MAX_BODY_BYTES
UNUSABLE_BODIES = {
    "lone surrogate": b'{"eventType":"SUCCESSFUL_TRANSACTION","eventData":'
    b'{"paymentReference":"FND-\\ud800","transactionReference":"MNFY|x"}}',
    "lone surrogate, legacy shape": b'{"paymentReference":"FND-\\ud800","amountPaid":"1",'
    b'"paidOn":"x","transactionReference":"MNFY|x","transactionHash":"x"}',
    "NaN": b'{"eventType":"SUCCESSFUL_TRANSACTION","eventData":{"amountPaid":NaN}}',
    "nested too deeply": b"[" * DEEP + b"]" * DEEP,
}


@pytest.mark.parametrize("body", UNUSABLE_BODIES.values(), ids=UNUSABLE_BODIES.keys())
def test_an_authentic_but_unusable_webhook_is_stored_as_malformed(gateway, settings, db, body):
    response = post_signed(gateway, body, settings.monnify_secret_key)
    assert response.status_code == 200, response.text
    event = db.webhook_events.find_one({"dedupeKey": hashlib.sha256(body).hexdigest()})
    assert event["status"] == "malformed"
    assert event.get("paymentReference") is None


@pytest.mark.parametrize("body", UNUSABLE_BODIES.values(), ids=UNUSABLE_BODIES.keys())
def test_an_unsigned_unusable_webhook_is_401(gateway, body):
    """The legacy transactionHash check parses unsigned bodies: they must not crash it."""
    response = requests.post(
        f"{gateway}{WEBHOOK_PATH}",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 401, response.text
    assert response.json()["statusCode"] == 401


def test_the_original_readme_curl_journey_with_a_signed_webhook(gateway, monnify_sim, settings):
    """README steps 1-6: signup, login, balance, fund, the flat webhook, balance. The
    webhook is the README's own body, now signed as Monnify signs it."""
    email = f"curl-{time.time_ns()}@example.com"
    credentials = {"email": email, "password": "password123"}
    assert requests.post(f"{gateway}/auth/signup", json=credentials, timeout=10).status_code == 201
    login = requests.post(f"{gateway}/auth/login", json=credentials, timeout=10)
    assert login.status_code == 200
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    balance = requests.get(f"{gateway}/wallet/balance", headers=headers, timeout=10).json()
    assert (balance["balance"], balance["currency"]) == (0, "NGN")
    funded = requests.post(
        f"{gateway}/wallet/fund",
        json={"amount": 5000, "email": email},
        headers=headers,
        timeout=10,
    )
    assert funded.status_code == 201
    funding = funded.json()
    pay(monnify_sim, funding, notify=False)  # the customer pays; we send the webhook

    body = json.dumps(
        {
            "transactionReference": funding["transactionReference"],
            "paymentReference": funding["paymentReference"],
            "amountPaid": 5000,
            "paymentStatus": "PAID",
        }
    ).encode()
    unsigned = requests.post(
        f"{gateway}{WEBHOOK_PATH}",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert unsigned.status_code == 401  # the README's unsigned curl no longer mints money
    assert post_signed(gateway, body, settings.monnify_secret_key).status_code == 200
    balance = wait_until(
        lambda: requests.get(f"{gateway}/wallet/balance", headers=headers, timeout=10).json(),
        lambda body: body["balance"] == 5000,
    )
    assert balance["currency"] == "NGN"


def test_concurrent_duplicate_deliveries_credit_once(gateway, monnify_sim, settings, user, db):
    funding = user.fund(5000)
    pay(monnify_sim, funding, notify=False)
    body = notification(funding, 5000)
    answers: list[int] = []
    start = threading.Barrier(8)

    def deliver():
        start.wait()
        answers.append(post_signed(gateway, body, settings.monnify_secret_key).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 8
    user.wait_for_balance(5000)
    event_status(db, funding)
    assert credit_entries(db, funding) == 1
    assert user.balance()["balance"] == 5000
    event = db.webhook_events.find_one(_events_of(funding))
    assert event["deliveries"] == 8  # one stored event, every delivery counted


def test_a_webhook_ahead_of_the_status_api_is_retried_until_monnify_reports_it_paid(
    gateway, monnify_sim, settings, user, db
):
    funding = user.fund(5000)
    # Delivered before Monnify's status API says paid (its view lags the webhook).
    assert post_signed(gateway, notification(funding, 5000), settings.monnify_secret_key).ok
    time.sleep(0.5)
    assert user.balance()["balance"] == 0
    pay(monnify_sim, funding, notify=False)
    user.wait_for_balance(5000)
    assert event_status(db, funding) == ["processed"]


def test_a_late_webhook_after_the_credit_changes_nothing(monnify_sim, user, db, run_task):
    funding = user.fund(5000)
    pay(monnify_sim, funding, notify=False)  # the webhook is lost...
    time.sleep(1.1)  # (older than RECONCILE_PENDING_AFTER_SECONDS)
    run_task("payments.reconcile_pending")  # ...and reconciliation credits it
    assert user.balance()["balance"] == 5000
    notify(monnify_sim, funding, delaySeconds=0.3)  # then it arrives, late
    assert event_status(db, funding) == ["processed"]
    assert user.balance()["balance"] == 5000
    assert credit_entries(db, funding) == 1


def test_a_replayed_old_notification_does_not_credit_a_reversed_payment(monnify_sim, user, db):
    funding = user.fund(5000)
    delivery = pay(monnify_sim, funding)["deliveries"][0]
    user.wait_for_balance(5000)
    reverse(monnify_sim, funding)
    notify(monnify_sim, funding)  # the REVERSED state, pushed
    user.wait_for_balance(0)
    sim(monnify_sim, f"webhooks/{delivery}/redeliver")  # the old PAID bytes, replayed
    time.sleep(1.0)
    assert user.balance()["balance"] == 0
    assert credit_entries(db, funding) == 1
    assert funding_record(db, funding)["status"] == "reversed"


@pytest.mark.parametrize("claimed", [50000, -5000, "5000000.00"])
def test_the_credit_follows_the_status_api_not_the_body(
    gateway, monnify_sim, settings, user, db, claimed
):
    """A validly signed body claiming more (or a negative amount) than was paid."""
    funding = user.fund(5000)
    pay(monnify_sim, funding, notify=False)
    response = post_signed(gateway, notification(funding, claimed), settings.monnify_secret_key)
    assert response.status_code == 200
    user.wait_for_balance(5000)
    assert event_status(db, funding) == ["processed"]
    assert funding_record(db, funding)["amountCredited"] == 500000


def test_a_negative_amount_for_an_unpaid_funding_moves_nothing(gateway, settings, user, db):
    funding = user.fund(5000)
    response = post_signed(gateway, notification(funding, -5000), settings.monnify_secret_key)
    assert response.status_code == 200
    assert event_status(db, funding) == ["unconfirmed"]  # Monnify never said paid
    assert user.balance()["balance"] == 0
    assert credit_entries(db, funding) == 0
    assert funding_record(db, funding)["status"] == "pending"


def _legacy_notification(secret: str) -> bytes:
    """The original API's flat body, authenticated only by its transactionHash."""
    fields = {
        "paymentReference": f"FND-legacy-{time.time_ns()}",
        "amountPaid": "5000.00",
        "paidOn": "2026-01-01 10:00:00",
        "transactionReference": f"MNFY|legacy|{time.time_ns()}",
    }
    digest = compute_transaction_hash(
        secret,
        fields["paymentReference"],
        fields["amountPaid"],
        fields["paidOn"],
        fields["transactionReference"],
    )
    return json.dumps({**fields, "transactionHash": digest}).encode()


def _post_unsigned(client, body: bytes):
    return client.post(WEBHOOK_PATH, data=body, headers={"Content-Type": "application/json"})


def test_a_legacy_transaction_hash_alone_is_refused_by_default(client, settings, db):
    assert settings.monnify_accept_legacy_hash is False
    body = _legacy_notification(settings.monnify_secret_key)
    before = db.webhook_events.count_documents({})
    response = _post_unsigned(client, body)
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["statusCode"] == 401
    assert db.webhook_events.count_documents({}) == before


def test_a_legacy_transaction_hash_is_accepted_when_the_setting_turns_it_on(settings, db):
    app = create_app(dataclasses.replace(settings, monnify_accept_legacy_hash=True))
    body = _legacy_notification(settings.monnify_secret_key)
    assert _post_unsigned(app.test_client(), body).status_code == 200
    event = db.webhook_events.find_one({"dedupeKey": hashlib.sha256(body).hexdigest()})
    assert event["verifiedBy"] == "transactionHash"
    forged = body.replace(b'"5000.00"', b'"5000.01"')  # the hash no longer matches
    assert _post_unsigned(app.test_client(), forged).status_code == 401
