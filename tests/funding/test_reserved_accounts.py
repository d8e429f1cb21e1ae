"""Reserved accounts over real HTTP: KYC, the funding account reserved once at the
simulator (also under concurrent requests), transfers into it credited once (replayed
webhooks too), a lost webhook found by reconciliation, and a reversal taken back."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import requests
from bson import ObjectId

from shared.monnify.client import MonnifyClient
from shared.monnify.errors import MonnifyNotFound, MonnifyRejected
from shared.monnify.reserved_accounts import ReservedAccount
from tests.support.funding_support import post_signed, sim, transaction_path
from tests.support.log_capture import capture_logs
from tests.support.polling import wait_until
from tests.support.users import User, signup

BVN = "22212345678"
NIN = "70123456789"


def put_kyc(user: User, body: Any) -> requests.Response:
    return requests.put(f"{user.gateway}/users/me/kyc", json=body, headers=user.headers, timeout=10)


def funding_account(user: User, **params: str) -> requests.Response:
    return user.get("/wallet/funding-account", params=params)


def with_account(user: User) -> dict[str, Any]:
    assert put_kyc(user, {"bvn": BVN}).status_code == 200
    response = funding_account(user)
    assert response.status_code == 200, response.text
    return response.json()


def transfer(monnify_sim: str, account: dict[str, Any], **body: Any) -> dict[str, Any]:
    reference = quote(account["accountReference"], safe="")
    return sim(monnify_sim, f"reserved-accounts/{reference}/transfer", body)["transaction"]


def credits(db, transaction_reference: str) -> int:
    return db.entries.count_documents({"key": f"monnify:{transaction_reference}"})


def creations(monnify_sim: str) -> int:
    seen = requests.get(f"{monnify_sim}/sim/stats", timeout=10).json()["requests"]
    return sum(
        r["method"] == "POST" and r["path"] == "/api/v2/bank-transfer/reserved-accounts"
        for r in seen
    )


def transfer_webhook(paid: dict[str, Any], account_reference: str) -> bytes:
    """A signed-style SUCCESSFUL_TRANSACTION for `paid` naming `account_reference`."""
    payload = {
        "eventType": "SUCCESSFUL_TRANSACTION",
        "eventData": {
            "transactionReference": paid["transactionReference"],
            "paymentReference": paid["paymentReference"],
            "amountPaid": 7,
            "paymentStatus": "PAID",
            "currency": "NGN",
            "product": {"type": "RESERVED_ACCOUNT", "reference": account_reference},
        },
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def make_due(db, account: dict[str, Any]) -> None:
    """Time passes: the account's transaction list is due a reading."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    db.reserved_accounts.update_one(
        {"_id": account["accountReference"]}, {"$set": {"scanDueAt": past}}
    )


# ---- KYC ---------------------------------------------------------------------------------


def test_kyc_is_stored_encrypted_and_never_answered_or_logged(user, db):
    with capture_logs() as logs:
        response = put_kyc(user, {"bvn": BVN})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["type"], body["last4"]) == ("bvn", BVN[-4:])
    assert BVN not in response.text
    assert BVN not in logs.text()
    record = db.kyc.find_one({"_id": ObjectId(user.id)})
    assert BVN not in repr(record)
    assert record["encrypted"]  # and the gateway can read it back: see the account tests
    assert "kyc" not in db.users.find_one({"_id": ObjectId(user.id)})


def test_kyc_can_be_replaced_by_a_nin(user, db):
    assert put_kyc(user, {"bvn": BVN}).status_code == 200
    response = put_kyc(user, {"nin": NIN})
    assert response.status_code == 200
    assert response.json()["type"] == "nin"
    assert db.kyc.find_one({"_id": ObjectId(user.id)})["last4"] == NIN[-4:]


def test_bad_kyc_is_a_400_and_stores_nothing(user, db):
    for body in (
        {},
        {"bvn": BVN, "nin": NIN},
        {"bvn": "1234567890"},
        {"bvn": "123456789012"},
        {"bvn": "1234567890a"},
        {"bvn": "12345678901\n"},
        {"nin": 12345678901},
        {"bvn": "١٢٣٤٥٦٧٨٩٠١"},  # Arabic-Indic digits are digits to str.isdigit
        {"passport": "A1234567"},
        ["bvn", BVN],
    ):
        response = put_kyc(user, body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["message"]
        assert BVN not in response.text
    assert db.kyc.find_one({"_id": ObjectId(user.id)}) is None


def test_kyc_needs_a_token(gateway):
    response = requests.put(f"{gateway}/users/me/kyc", json={"bvn": BVN}, timeout=10)
    assert response.status_code == 401


# ---- the funding account -----------------------------------------------------------------


def test_the_funding_account_needs_kyc_first(user, monnify_sim, db):
    before = creations(monnify_sim)
    response = funding_account(user)
    assert response.status_code == 409
    assert "BVN or NIN" in response.json()["message"]
    assert creations(monnify_sim) == before
    assert db.reserved_accounts.count_documents({"userId": ObjectId(user.id)}) == 0


def test_the_funding_account_is_reserved_once_then_served_from_the_database(user, monnify_sim, db):
    before = creations(monnify_sim)
    account = with_account(user)
    assert account["currency"] == "NGN"
    assert account["accountReference"] == f"PCS-{user.id}-NGN"
    assert user.email not in str(account)  # payers see the name: nothing personal
    assert account["accounts"]
    for bank in account["accounts"]:
        assert set(bank) == {"bankCode", "bankName", "accountNumber", "accountName"}
        assert len(bank["accountNumber"]) == 10
    assert funding_account(user, currency="NGN").json() == account
    assert creations(monnify_sim) == before + 1
    assert BVN not in repr(db.reserved_accounts.find_one({"userId": ObjectId(user.id)}))


def test_concurrent_requests_reserve_exactly_one_account(user, monnify_sim, db):
    assert put_kyc(user, {"nin": NIN}).status_code == 200
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: funding_account(user), range(8)))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    assert len({a.text for a in answers}) == 1
    at_sim = requests.get(
        f"{monnify_sim}/sim/reserved-accounts", params={"customerEmail": user.email}, timeout=10
    ).json()["accounts"]
    assert len(at_sim) == 1
    assert db.reserved_accounts.count_documents({"userId": ObjectId(user.id)}) == 1


def test_a_kyc_number_monnify_refuses_is_a_422_that_does_not_quote_it(user, db):
    unverifiable = "00001234567"
    assert put_kyc(user, {"bvn": unverifiable}).status_code == 200
    with capture_logs() as logs:
        response = funding_account(user)
    assert response.status_code == 422
    assert "could not be verified" in response.json()["message"]
    assert unverifiable not in response.text
    assert unverifiable not in logs.text()
    assert db.reserved_accounts.count_documents({"userId": ObjectId(user.id)}) == 0


def test_a_currency_without_reserved_accounts_is_a_400(user):
    assert put_kyc(user, {"bvn": BVN}).status_code == 200
    response = funding_account(user, currency="USD")
    assert response.status_code == 400
    assert "NGN" in response.json()["message"]
    assert funding_account(user, currency="XYZ").status_code == 400


# ---- transfers into it -------------------------------------------------------------------


def test_a_transfer_is_credited_once_and_listed(user, monnify_sim, db):
    account = with_account(user)
    paid = transfer(monnify_sim, account, amount=2500)
    assert paid["product"] == {"type": "RESERVED_ACCOUNT", "reference": account["accountReference"]}
    user.wait_for_balance(2500)
    history = user.get("/wallet/transactions").json()
    assert [(t["type"], t["amount"], t["reference"]) for t in history] == [
        ("credit", 2500, paid["transactionReference"])
    ]
    assert history[0]["description"] == "Bank transfer to your funding account"
    assert credits(db, paid["transactionReference"]) == 1
    funding = db.fundings.find_one({"_id": paid["paymentReference"]})
    assert (funding["status"], funding["accountReference"]) == ("paid", account["accountReference"])


def test_a_replayed_webhook_credits_once(user, monnify_sim, db):
    account = with_account(user)
    paid = transfer(monnify_sim, account, amount=1000)
    user.wait_for_balance(1000)
    reference = paid["transactionReference"]
    sim(monnify_sim, transaction_path(reference, "notify"), {"times": 3})
    delivery = requests.get(
        f"{monnify_sim}/sim/webhooks", params={"reference": reference}, timeout=10
    ).json()["deliveries"][0]
    sim(monnify_sim, f"webhooks/{delivery['id']}/redeliver")
    # The same bytes each time: one stored event, delivered five times.
    wait_until(
        lambda: db.webhook_events.find_one({"transactionReference": reference}),
        lambda event: event["deliveries"] >= 5 and event["status"] == "processed",
    )
    second = transfer(monnify_sim, account, amount=1)  # settles after the replays
    user.wait_for_balance(1001)
    assert credits(db, reference) == 1
    assert credits(db, second["transactionReference"]) == 1


def test_a_webhook_for_an_unknown_account_credits_nothing(user, monnify_sim, settings, db):
    account = with_account(user)
    paid = transfer(monnify_sim, account, amount=700, notify=False)
    # The same transaction, but naming an account we never reserved.
    body = transfer_webhook(paid, "PCS-nobody-NGN")
    assert post_signed(user.gateway, body, settings.monnify_secret_key).status_code == 200
    event = wait_until(
        lambda: db.webhook_events.find_one({"transactionReference": paid["transactionReference"]}),
        lambda e: e is not None and e["status"] != "received",
    )
    assert event["status"] == "unmatched"
    assert user.balance()["balance"] == 0


def test_a_lost_webhook_is_found_by_reconciliation_and_credited_once(
    user, monnify_sim, db, run_task
):
    account = with_account(user)
    paid = transfer(monnify_sim, account, amount=4200, notify=False)
    assert user.balance()["balance"] == 0
    make_due(db, account)
    result = run_task("payments.reconcile_pending")
    assert result["reservedAccounts"]["credited"] >= 1
    assert user.balance()["balance"] == 4200
    stored = db.reserved_accounts.find_one({"_id": account["accountReference"]})
    assert stored["scannedThrough"] and stored["scanDueAt"] > datetime.now(UTC)
    make_due(db, account)  # read again: the transfer is known, nothing moves
    run_task("payments.reconcile_pending")
    assert user.balance()["balance"] == 4200
    assert credits(db, paid["transactionReference"]) == 1


def test_a_reversed_transfer_is_taken_back(user, monnify_sim, db, run_task):
    account = with_account(user)
    paid = transfer(monnify_sim, account, amount=3000)
    user.wait_for_balance(3000)
    sim(monnify_sim, transaction_path(paid["transactionReference"], "reverse"))
    result = run_task("payments.reconcile_pending")
    assert result["credited"]["reversed"] >= 1
    assert user.balance()["balance"] == 0
    assert db.fundings.find_one({"_id": paid["paymentReference"]})["status"] == "reversed"


def test_a_transfer_the_status_api_places_in_another_account_is_not_credited(
    gateway, monnify_sim, settings, db
):
    payer, other = signup(gateway), signup(gateway)
    paid = transfer(monnify_sim, with_account(payer), amount=900, notify=False)
    # A notification naming the other user's account for the payer's transfer.
    body = transfer_webhook(paid, with_account(other)["accountReference"])
    assert post_signed(gateway, body, settings.monnify_secret_key).status_code == 200
    funding = wait_until(
        lambda: db.fundings.find_one({"_id": paid["paymentReference"]}),
        lambda f: f is not None and "discrepancy" in f,
    )
    assert "another account" in funding["discrepancy"]
    assert other.balance()["balance"] == 0
    assert credits(db, paid["transactionReference"]) == 0


# ---- the simulator, through the client --------------------------------------------------


def reserve(client: MonnifyClient, reference: str, **options: Any) -> ReservedAccount:
    return client.create_reserved_account(
        account_reference=reference,
        account_name="Ada Obi",
        currency="NGN",
        customer_email="ada@example.com",
        customer_name="Ada Obi",
        kyc=("bvn", BVN),
        **options,
    )


def test_the_simulator_reserves_like_monnify(monnify_sim, runtime):
    client = runtime.monnify()
    reference = f"test-{ObjectId()}"
    created = reserve(client, reference, preferred_banks=("035",))
    assert [a.bank_code for a in created.accounts] == ["035"]
    assert client.get_reserved_account(reference) == created
    with pytest.raises(MonnifyRejected) as refused:
        reserve(client, reference)
    assert refused.value.http_status == 422
    assert "same accountReference" in refused.value.message
    with pytest.raises(MonnifyNotFound):
        client.get_reserved_account(f"test-{ObjectId()}")
    with pytest.raises(MonnifyRejected):
        reserve(client, f"test-{ObjectId()}", preferred_banks=("999",))
    everywhere = reserve(client, f"test-{ObjectId()}")
    assert len(everywhere.accounts) == 2  # getAllAvailableBanks


def test_the_simulator_lists_transfers_newest_first_and_knows_their_status(monnify_sim, runtime):
    client = runtime.monnify()
    reference = f"test-{ObjectId()}"
    reserve(client, reference)
    assert client.reserved_account_transactions(reference, page=0, size=10).items == ()
    account = {"accountReference": reference}
    first = transfer(monnify_sim, account, amount=100, notify=False)
    second = transfer(monnify_sim, account, amount=200, notify=False)
    page0 = client.reserved_account_transactions(reference, page=0, size=1)
    page1 = client.reserved_account_transactions(reference, page=1, size=1)
    assert [i.transaction_reference for i in (*page0.items, *page1.items)] == [
        second["transactionReference"],
        first["transactionReference"],
    ]
    assert (page0.last, page1.last) == (False, True)
    status = client.get_transaction(first["transactionReference"])
    assert (status.payment_status.value, status.amount_paid_minor) == ("PAID", 10000)
    assert (status.product_type, status.product_reference) == ("RESERVED_ACCOUNT", reference)
    assert status.payment_reference == status.transaction_reference


def test_the_simulators_reserved_account_routes_need_a_token(monnify_sim):
    for path in (
        "/api/v2/bank-transfer/reserved-accounts/anything",
        "/api/v1/bank-transfer/reserved-accounts/transactions?accountReference=anything",
    ):
        assert requests.get(f"{monnify_sim}{path}", timeout=10).status_code == 401


def test_the_simulators_transfer_control_refuses_bad_input(monnify_sim, runtime):
    reference = f"test-{ObjectId()}"
    reserve(runtime.monnify(), reference)
    url = f"{monnify_sim}/sim/reserved-accounts/{reference}/transfer"
    assert requests.post(url, json={"amount": -1}, timeout=10).status_code == 400
    assert requests.post(url, json={}, timeout=10).status_code == 400
    unknown = f"{monnify_sim}/sim/reserved-accounts/test-nobody/transfer"
    assert requests.post(unknown, json={"amount": 5}, timeout=10).status_code == 404
