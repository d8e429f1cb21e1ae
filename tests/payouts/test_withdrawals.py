"""Withdrawals over real HTTP: the gateway holds the money, the real worker sends the
transfer to the simulator, whose answer, signed webhooks and summary endpoint settle it.
The simulator picks each outcome by the destination account's last digit."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
import simplejson

from shared.ledger import LedgerReads, SystemAccount, system_account_id, wallet_id
from shared.payouts.banks import BANKS_CACHE_KEY
from shared.payouts.withdrawals import WithdrawalRequest
from tests.support.funding_support import post_signed, sim
from tests.support.polling import wait_until
from tests.support.users import User, signup

GTBANK = "058"
SUCCESS, FAILS, PENDS, NEEDS_OTP, ANSWER_LOST, UNKNOWN = (
    "0123456781",
    "0123456782",
    "0123456783",
    "0123456784",
    "0123456786",
    "0123456780",
)
FEE = 10  # WITHDRAWAL_FEE in the tests' environment (tests/conftest.py)


def put_account(user: User, account_number: str, bank_code: str = GTBANK) -> requests.Response:
    return requests.put(
        f"{user.gateway}/users/me/payout-account",
        json={"bankCode": bank_code, "accountNumber": account_number},
        headers=user.headers,
        timeout=10,
    )


def withdraw(user: User, amount: Any, key: str | None = None, **extra: Any) -> requests.Response:
    headers = {"Idempotency-Key": key or uuid.uuid4().hex}
    return user.post("/wallet/withdrawals", {"amount": amount, **extra}, headers)


def withdrawal(user: User, reference: str) -> dict[str, Any]:
    response = user.get(f"/wallet/withdrawals/{reference}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_status(user: User, reference: str, status: str) -> dict[str, Any]:
    return wait_until(lambda: withdrawal(user, reference), lambda w: w["status"] == status)


def sim_transfer(monnify_sim: str, reference: str) -> dict[str, Any]:
    response = requests.get(f"{monnify_sim}/sim/disbursements/{reference}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture()
def payee(gateway, ledger):
    """A user with `naira` in the wallet and a payout account ending in the outcome's digit."""

    def make(account_number: str = SUCCESS, naira: int = 1000) -> User:
        user = signup(gateway)
        ledger.credit(f"test:{uuid.uuid4().hex}", wallet_id(user.id, "NGN"), naira * 100)
        assert put_account(user, account_number).status_code == 200
        return user

    return make


def started(user: User, amount: Any = 500) -> dict[str, Any]:
    response = withdraw(user, amount)
    assert response.status_code == 202, response.text
    return response.json()


# ---- banks and the payout account ------------------------------------------------------


def test_the_bank_list_comes_from_monnify_then_from_the_cache(gateway, monnify_sim, redis_client):
    user = signup(gateway)
    redis_client.delete(BANKS_CACHE_KEY)
    first = user.get("/banks")
    assert first.status_code == 200, first.text
    assert {"name": "Guaranty Trust Bank", "code": GTBANK} in first.json()
    asked = _bank_list_calls(monnify_sim)
    assert user.get("/banks").json() == first.json()
    assert _bank_list_calls(monnify_sim) == asked
    assert 0 < redis_client.ttl(BANKS_CACHE_KEY) <= 86400


def _bank_list_calls(monnify_sim: str) -> int:
    stats = requests.get(f"{monnify_sim}/sim/stats", timeout=10).json()
    return sum(r["path"] == "/api/v1/banks" for r in stats["requests"])


def test_the_payout_account_is_resolved_by_the_bank_and_stored(gateway):
    user = signup(gateway)
    assert user.get("/users/me/payout-account").status_code == 409
    response = put_account(user, SUCCESS)
    assert response.status_code == 200, response.text
    account = response.json()
    assert account == {
        "bankCode": GTBANK,
        "bankName": "Guaranty Trust Bank",
        "accountNumber": SUCCESS,
        "accountName": account["accountName"],
    }
    assert account["accountName"]  # the simulator's deterministic name for the number
    assert put_account(user, SUCCESS).json()["accountName"] == account["accountName"]
    assert user.get("/users/me/payout-account").json() == account


@pytest.mark.parametrize(
    ("account_number", "bank_code", "status"),
    [
        (UNKNOWN, GTBANK, 422),  # the bank can't resolve it
        ("012345678", GTBANK, 400),  # 9 digits
        ("01234567811", GTBANK, 400),
        ("01234x6781", GTBANK, 400),
        (SUCCESS, "999", 400),  # no such bank
    ],
)
def test_an_account_that_cannot_be_resolved_is_refused_and_not_stored(
    gateway, account_number, bank_code, status
):
    user = signup(gateway)
    response = put_account(user, account_number, bank_code)
    assert response.status_code == status, response.text
    assert set(response.json()) >= {"statusCode", "error", "message"}
    assert user.get("/users/me/payout-account").status_code == 409


# ---- the outcomes ------------------------------------------------------------------------


def test_a_successful_transfer_captures_amount_and_fee(payee, ledger, db):
    user = payee(SUCCESS)
    answer = started(user, 500)
    assert answer["status"] == "pending"
    assert (answer["amount"], answer["fee"], answer["currency"]) == (500, FEE, "NGN")
    assert answer["destination"]["accountNumber"] == SUCCESS
    assert answer["reference"].startswith("WDR-")
    wait_for_status(user, answer["reference"], "successful")
    assert user.balance() == {
        "balance": 1000 - 500 - FEE,
        "available": 1000 - 500 - FEE,
        "held": 0,
        "currency": "NGN",
        "restricted": False,
    }
    capture = LedgerReads(db).entry(f"withdrawal:{answer['reference']}:capture")
    moved = {p["account"]: p["amount"] for p in capture["postings"]}
    assert moved[system_account_id(SystemAccount.GATEWAY_CLEARING, "NGN")] == 500_00
    assert moved[system_account_id(SystemAccount.PLATFORM_REVENUE, "NGN")] == FEE * 100


def test_a_failed_transfer_releases_the_hold(payee):
    user = payee(FAILS)
    answer = started(user)
    assert user.balance()["available"] in (1000 - 500 - FEE, 1000)  # held until it fails
    assert wait_for_status(user, answer["reference"], "failed")["note"]
    assert user.balance() == {**user.balance(), "balance": 1000, "available": 1000, "held": 0}


def test_a_pending_transfer_waits_for_the_webhook(payee, monnify_sim, ledger, db):
    user = payee(PENDS)
    answer = started(user)
    reference = answer["reference"]
    wait_for_status(user, reference, "processing")
    assert user.balance()["held"] == 500 + FEE
    # The hold has no expiry: a transfer in flight keeps its money however long it takes.
    reads = LedgerReads(db)
    hold = reads.hold(f"withdrawal:{reference}:hold")
    assert hold["status"] == "open" and hold["expiresAt"] is None
    ledger.expire_holds()
    assert reads.hold(hold["_id"])["status"] == "open"

    sim(monnify_sim, f"disbursements/{reference}/settle", {"status": "SUCCESS"})
    wait_for_status(user, reference, "successful")
    assert user.balance()["balance"] == 1000 - 500 - FEE


def test_a_failed_disbursement_webhook_releases_a_pending_transfer(payee, monnify_sim):
    user = payee(PENDS)
    reference = started(user)["reference"]
    wait_for_status(user, reference, "processing")
    sim(monnify_sim, f"disbursements/{reference}/settle", {"status": "FAILED"})
    wait_for_status(user, reference, "failed")
    assert user.balance()["available"] == 1000


def test_a_transfer_waiting_for_its_otp_completes_once_authorized(payee):
    user = payee(NEEDS_OTP)
    reference = started(user)["reference"]
    wait_for_status(user, reference, "awaiting_authorization")
    wrong = user.post(f"/wallet/withdrawals/{reference}/authorize", {"otp": "000000"})
    assert wrong.status_code == 422, wrong.text
    assert withdrawal(user, reference)["status"] == "awaiting_authorization"
    right = user.post(f"/wallet/withdrawals/{reference}/authorize", {"otp": "123456"})
    assert right.status_code == 200, right.text
    assert right.json()["status"] == "successful"
    assert user.balance()["balance"] == 1000 - 500 - FEE
    again = user.post(f"/wallet/withdrawals/{reference}/authorize", {"otp": "123456"})
    assert again.status_code == 409


def test_a_reversal_after_success_credits_the_wallet_back_once(payee, monnify_sim, db):
    user = payee(SUCCESS)
    reference = started(user)["reference"]
    wait_for_status(user, reference, "successful")
    settled = sim(monnify_sim, f"disbursements/{reference}/settle", {"status": "REVERSED"})
    wait_for_status(user, reference, "reversed")
    assert user.balance()["balance"] == 1000
    # The same webhook again changes nothing.
    sim(monnify_sim, f"webhooks/{settled['deliveries'][0]}/redeliver")
    wait_until(
        lambda: db.webhook_events.find_one({"body": {"$regex": reference}, "deliveries": 2}),
        lambda event: event is not None and event["status"] != "received",
    )
    assert db.entries.count_documents({"key": f"withdrawal:{reference}:reversal"}) == 1
    assert user.balance()["balance"] == 1000
    history = user.get("/wallet/transactions").json()
    assert [item["type"] for item in history[:2]] == ["credit", "debit"]


def test_a_lost_answer_is_looked_up_and_never_sent_twice(payee, monnify_sim):
    """Monnify made the transfer but its answer never came (and no webhook): the task
    asks the summary endpoint before anything else and finds it done."""
    user = payee(ANSWER_LOST)
    reference = started(user)["reference"]
    wait_for_status(user, reference, "successful")
    assert sim_transfer(monnify_sim, reference)["posts"] == 1
    assert user.balance()["balance"] == 1000 - 500 - FEE


def test_a_request_monnify_never_received_is_sent_again_after_a_look_up(payee, monnify_sim):
    """Monnify was down (503 before acting): the summary endpoint knows no such transfer,
    so it is sent again, and reaches Monnify once."""
    user = payee(SUCCESS)
    sim(monnify_sim, "faults", {"mode": "down", "count": 1})
    reference = started(user)["reference"]
    wait_for_status(user, reference, "successful")
    assert sim_transfer(monnify_sim, reference)["posts"] == 1
    summary_calls = requests.get(f"{monnify_sim}/sim/stats", timeout=10).json()["requests"]
    assert any(r["path"].endswith("/single/summary") and r["status"] == 404 for r in summary_calls)


def test_a_transfer_above_the_merchant_wallet_fails_and_is_released(payee, monnify_sim):
    user = payee(SUCCESS)
    sim(monnify_sim, "disbursements/wallet", {"balance": 100})
    try:
        reference = started(user)["reference"]
        assert "balance" in wait_for_status(user, reference, "failed")["note"].lower()
    finally:
        sim(monnify_sim, "disbursements/wallet", {"balance": 100_000_000})
    assert user.balance()["available"] == 1000


def test_the_poller_settles_a_transfer_whose_webhook_never_came(payee, monnify_sim, run_task, db):
    user = payee(PENDS)
    reference = started(user)["reference"]
    wait_for_status(user, reference, "processing")
    sim(monnify_sim, f"disbursements/{reference}/settle", {"status": "SUCCESS", "notify": False})
    wait_until(
        lambda: run_task("payouts.poll") and withdrawal(user, reference),
        lambda w: w["status"] == "successful",
    )
    assert user.balance()["balance"] == 1000 - 500 - FEE


# ---- refusals, limits and idempotency ------------------------------------------------------


def test_the_same_key_replays_the_first_answer_and_holds_once(payee, db):
    user = payee(PENDS)
    first = withdraw(user, 500, key="payout-1")
    again = withdraw(user, 500, key="payout-1")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert (
        db.withdrawals.count_documents({"userId": db.users.find_one({"email": user.email})["_id"]})
        == 1
    )
    assert user.balance()["held"] == 500 + FEE
    other = withdraw(user, 400, key="payout-1")
    assert other.status_code == 409, other.text
    assert user.balance()["held"] == 500 + FEE


def test_402_when_the_available_balance_cannot_cover_amount_and_fee(payee, ledger):
    user = payee(SUCCESS, naira=505)
    response = withdraw(user, 500, key="short")
    assert response.status_code == 402, response.text
    assert response.json()["details"]["required"] == 500 + FEE
    assert user.balance() == {**user.balance(), "balance": 505, "held": 0}
    assert user.get("/wallet/withdrawals").json() == []
    # A refused request leaves nothing behind: the key works once the money is there.
    ledger.credit(f"test:{uuid.uuid4().hex}", wallet_id(user.id, "NGN"), 100_00)
    assert withdraw(user, 500, key="short").status_code == 202


def test_a_restricted_wallet_cannot_withdraw(payee, ledger):
    user = payee(SUCCESS)
    ledger.set_restricted(wallet_id(user.id, "NGN"), True, "test: reversal")
    response = withdraw(user, 500)
    assert response.status_code == 403, response.text
    assert "restricted" in response.json()["message"]
    assert user.balance()["held"] == 0
    assert user.get("/wallet/withdrawals").json() == []


@pytest.mark.parametrize("amount", [99, 50001, 0, -5, "500", 100.001])
def test_amounts_outside_the_limits_are_400(payee, amount):
    user = payee(SUCCESS, naira=60_000)
    response = withdraw(user, amount)
    assert response.status_code == 400, response.text
    assert user.balance()["held"] == 0


def test_the_daily_limit_counts_every_withdrawal_of_the_day(payee):
    user = payee(PENDS, naira=100_000)
    assert withdraw(user, 40_000).status_code == 202
    refused = withdraw(user, 30_000)
    assert refused.status_code == 422, refused.text
    assert "daily limit" in refused.json()["message"]
    assert user.balance()["held"] == 40_000 + FEE
    assert withdraw(user, 20_000).status_code == 202  # exactly up to the limit


def test_a_failed_withdrawal_gives_its_share_of_the_daily_limit_back(payee, gateway):
    user = payee(FAILS, naira=100_000)
    reference = started(user, 50_000)["reference"]
    wait_for_status(user, reference, "failed")
    assert withdraw(user, 50_000).status_code == 202


def test_a_withdrawal_needs_a_key_and_a_payout_account(gateway, payee):
    user = payee(SUCCESS)
    response = user.post("/wallet/withdrawals", {"amount": 500})
    assert response.status_code == 400, response.text
    newcomer = signup(gateway)
    assert withdraw(newcomer, 500).status_code == 409


# ---- reads -----------------------------------------------------------------------------


def test_withdrawals_are_listed_newest_first_page_by_page(payee, gateway):
    user = payee(PENDS)
    first, second = started(user, 100)["reference"], started(user, 200)["reference"]
    page = user.get("/wallet/withdrawals", params={"limit": 1})
    assert [w["reference"] for w in page.json()] == [second]
    following = requests.get(page.links["next"]["url"], headers=user.headers, timeout=10)
    assert [w["reference"] for w in following.json()] == [first]
    stranger = signup(gateway)
    assert stranger.get(f"/wallet/withdrawals/{first}").status_code == 404
    assert stranger.get("/wallet/withdrawals").json() == []
    assert user.get("/wallet/withdrawals/WDR-nothing").status_code == 404


def test_a_webhook_is_only_a_cue_checked_with_the_summary(payee, settings, db):
    """A signed SUCCESSFUL_DISBURSEMENT for a transfer Monnify still reports pending moves
    nothing: the summary endpoint, not the notification, decides."""
    user = payee(PENDS)
    reference = started(user)["reference"]
    wait_for_status(user, reference, "processing")
    body = simplejson.dumps(
        {
            "eventType": "SUCCESSFUL_DISBURSEMENT",
            "eventData": {"reference": reference, "amount": 500, "status": "SUCCESS"},
        },
        separators=(",", ":"),
    ).encode()
    assert post_signed(user.gateway, body, settings.monnify_secret_key).status_code == 200
    wait_until(
        lambda: db.webhook_events.find_one({"body": body.decode()}),
        lambda event: event is not None and event["status"] != "received",
    )
    assert withdrawal(user, reference)["status"] == "processing"
    assert user.balance()["held"] == 500 + FEE


def test_the_poller_sends_a_withdrawal_whose_task_was_lost(payee, db, runtime, run_task):
    """The broker was down when the gateway answered: the withdrawal is held and recorded,
    and the poller sends it."""
    user = payee(SUCCESS)
    user_id = db.users.find_one({"email": user.email})["_id"]
    answer = runtime.withdrawals().request(WithdrawalRequest(user_id, 500_00, "NGN", "no-task"))
    assert withdrawal(user, answer["reference"])["status"] == "pending"
    wait_until(
        lambda: run_task("payouts.poll") and withdrawal(user, answer["reference"]),
        lambda w: w["status"] == "successful",
    )
    assert user.balance()["balance"] == 1000 - 500 - FEE
