"""Refunds over real HTTP: an admin refunds a credited funding, the amount is held, the
simulator's refund API is called, and SUCCESSFUL_REFUND / FAILED_REFUND (or polling the
refund status API) capture or release the hold. The hold lives until that verdict,
however late; a refund open too long is raised for review."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from bson import ObjectId
from prometheus_client import REGISTRY

from shared.ledger import LedgerReads, wallet_id
from tests.support.funding_support import funding_record, pay, sim
from tests.support.log_capture import capture_logs
from tests.support.polling import wait_until
from tests.support.users import signup


@pytest.fixture()
def credited(gateway, monnify_sim):
    """A user whose 5000 NGN funding was paid by bank transfer and credited."""

    def _credited(**payment):
        user = signup(gateway)
        funding = user.fund(5000)
        pay(monnify_sim, funding, **payment)
        user.wait_for_balance(5000)
        return user, funding

    return _credited


def refund(admin, funding, **body):
    return admin.post(
        f"/admin/fundings/{funding['paymentReference']}/refunds",
        {"reason": "customer asked", **body},
    )


def complete(monnify_sim, refund_reference, status):
    sim(monnify_sim, f"refunds/{refund_reference}/complete", {"status": status})


def refund_status(db, refund_reference, wanted):
    return wait_until(
        lambda: db.refunds.find_one({"_id": refund_reference}),
        lambda refund: refund["status"] == wanted,
    )


def test_a_full_refund_holds_then_leaves_through_monnify(monnify_sim, admin, credited, db):
    user, funding = credited()
    started = refund(admin, funding)
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["amount"] == 5000 and body["status"] == "pending"
    assert body["refundReference"].startswith("RFD-")
    held = user.balance()
    assert (held["balance"], held["held"], held["available"]) == (5000, 5000, 0)

    complete(monnify_sim, body["refundReference"], "COMPLETED")
    refund_status(db, body["refundReference"], "completed")
    after = user.balance()
    assert (after["balance"], after["held"]) == (0, 0)
    capture = LedgerReads(db).entry(f"refund:{body['refundReference']}:capture")
    assert capture["reference"] == funding["transactionReference"]
    assert funding_record(db, funding)["amountRefunded"] == 500000
    again = refund(admin, funding)
    assert again.status_code == 409
    assert "refunded in full" in again.json()["message"]
    action = db.admin_actions.find_one({"target": funding["paymentReference"]})
    assert action["details"]["refundReference"] == body["refundReference"]


def test_a_failed_refund_releases_the_hold(monnify_sim, admin, credited, db):
    user, funding = credited()
    first = refund(admin, funding, amount=2000).json()
    assert user.balance()["held"] == 2000
    complete(monnify_sim, first["refundReference"], "FAILED")
    refund_status(db, first["refundReference"], "failed")
    after = user.balance()
    assert (after["balance"], after["held"]) == (5000, 0)
    assert funding_record(db, funding)["amountRefunded"] == 0

    # What failed can be refunded again; no more than what was credited.
    assert refund(admin, funding, amount=3000).status_code == 201
    too_much = refund(admin, funding, amount=2500)
    assert too_much.status_code == 422
    assert too_much.json()["message"] == "At most 2000 of this funding can still be refunded"


def test_a_refund_the_wallet_cannot_cover_is_402_and_moves_nothing(admin, credited, db, runtime):
    user, funding = credited()
    ledger = runtime.ledger()
    expires = datetime.now(UTC) + timedelta(minutes=10)
    ledger.hold(f"test-spend-{ObjectId()}", wallet_id(ObjectId(user.id), "NGN"), 400000, expires)
    response = refund(admin, funding)
    assert response.status_code == 402
    assert response.json()["message"] == (
        "The wallet's available balance (1000) cannot cover a refund of 5000; nothing was refunded"
    )
    assert user.balance()["held"] == 4000
    assert db.refunds.find_one({"paymentReference": funding["paymentReference"]})["status"] == (
        "rejected"
    )
    assert funding_record(db, funding)["amountRefunded"] == 0


def test_monnify_r_codes_come_back_as_clear_4xx_and_release_the_hold(
    monnify_sim, admin, credited, db, runtime
):
    card_user, card_funding = credited(paymentMethod="CARD")
    not_permitted = refund(admin, card_funding)
    assert not_permitted.status_code == 422
    assert not_permitted.json()["message"] == (
        "Monnify refused the refund (R2): Refund not permitted for specified transaction."
    )
    assert not_permitted.json()["details"]["monnifyResponseCode"] == "R2"
    assert card_user.balance()["held"] == 0

    user, funding = credited()
    below_minimum = refund(admin, funding, amount=5)
    assert below_minimum.status_code == 422
    assert "(R4)" in below_minimum.json()["message"]

    # A refund made outside this service (Monnify's dashboard) leaves less to refund.
    monnify = runtime.monnify()
    monnify.initiate_refund(
        transaction_reference=funding["transactionReference"],
        refund_reference=f"dashboard-{ObjectId()}",
        amount_minor=300000,
        reason="dashboard refund",
    )
    exceeds = refund(admin, funding)
    assert exceeds.status_code == 422
    assert "(R12)" in exceeds.json()["message"]
    after = user.balance()
    assert (after["balance"], after["held"]) == (5000, 0)
    assert funding_record(db, funding)["amountRefunded"] == 0
    statuses = {
        r["status"] for r in db.refunds.find({"paymentReference": funding["paymentReference"]})
    }
    assert statuses == {"rejected"}


@pytest.mark.parametrize(
    "body", [{"amount": 0}, {"amount": -5}, {"amount": 1.001}, {"reason": ""}, {"reason": "x" * 65}]
)
def test_bad_refund_requests_are_400(admin, credited, body):
    _, funding = credited()
    response = admin.post(
        f"/admin/fundings/{funding['paymentReference']}/refunds", {"reason": "r", **body}
    )
    assert response.status_code == 400, response.text


def test_only_a_credited_funding_of_ours_can_be_refunded(admin, gateway):
    assert refund(admin, {"paymentReference": "FND-nope"}).status_code == 404
    pending = signup(gateway).fund(5000)
    response = refund(admin, pending)
    assert response.status_code == 409
    assert (
        response.json()["message"] == "Only a credited funding can be refunded; this one is pending"
    )


def test_a_lost_refund_webhook_is_settled_by_polling(monnify_sim, admin, credited, db, run_task):
    user, funding = credited()
    started = refund(admin, funding, amount=1000).json()
    config = requests.get(f"{monnify_sim}/sim/config", timeout=10).json()
    sim(monnify_sim, "config", {"webhookUrl": "http://127.0.0.1:9/lost"})
    try:
        complete(monnify_sim, started["refundReference"], "COMPLETED")
    finally:
        sim(monnify_sim, "config", {"webhookUrl": config["webhookUrl"]})
    assert db.refunds.find_one({"_id": started["refundReference"]})["status"] == "pending"
    result = run_task("payments.reconcile_pending")
    assert result["refunds"]["closed"] >= 1
    assert db.refunds.find_one({"_id": started["refundReference"]})["status"] == "completed"
    assert user.balance()["balance"] == 4000


def test_an_unanswered_refund_request_stays_held_until_monnify_is_asked(
    monnify_sim, admin, credited, db, run_task
):
    user, funding = credited()
    sim(monnify_sim, "faults", {"mode": "down"})
    try:
        response = refund(admin, funding, amount=1000)
    finally:
        sim(monnify_sim, "faults", {"mode": "none"})
    assert response.status_code == 503
    reference = response.json()["details"]["refundReference"]
    assert user.balance()["held"] == 1000  # it may exist at Monnify: the money stays held

    # Later than any request could still be in flight, the poller asks Monnify.
    db.refunds.update_one(
        {"_id": reference}, {"$set": {"updatedAt": datetime.now(UTC) - timedelta(minutes=10)}}
    )
    run_task("payments.reconcile_pending")
    assert db.refunds.find_one({"_id": reference})["status"] == "rejected"
    assert user.balance()["held"] == 0
    assert funding_record(db, funding)["amountRefunded"] == 0


A_YEAR_LATER = timedelta(days=365)


def test_a_refund_hold_outlives_every_expiry_until_monnify_answers(
    monnify_sim, admin, credited, db, runtime
):
    user, funding = credited()
    started = refund(admin, funding, amount=1000).json()
    assert started["status"] == "pending"

    # The hold sweeper, run as if a year had passed: the refund is still in flight.
    ledger = runtime.ledger()
    while ledger.expire_holds(now=datetime.now(UTC) + A_YEAR_LATER):
        pass
    assert user.balance()["held"] == 1000

    complete(monnify_sim, started["refundReference"], "COMPLETED")
    refund_status(db, started["refundReference"], "completed")
    after = user.balance()
    assert (after["balance"], after["held"]) == (4000, 0)  # paid out and debited


def test_a_refund_open_too_long_is_raised_for_review(
    monnify_sim, admin, credited, db, settings, run_task
):
    user, funding = credited()
    reference = refund(admin, funding, amount=1000).json()["refundReference"]
    late = datetime.now(UTC) - timedelta(seconds=settings.refund_review_after_seconds + 60)
    db.refunds.update_one({"_id": reference}, {"$set": {"createdAt": late}})

    with capture_logs() as logs:
        run_task("payments.reconcile_pending")
        run_task("payments.reconcile_pending")  # raised once, not on every pass
    raised = [line for line in logs.lines() if line.get("event") == "refund_overdue"]
    assert [(line["refundReference"], line["level"]) for line in raised] == [(reference, "error")]
    assert REGISTRY.get_sample_value("refunds_overdue") >= 1
    assert db.refunds.find_one({"_id": reference})["status"] == "pending"
    assert user.balance()["held"] == 1000  # still held: Monnify may yet pay it out

    today = datetime.now(UTC).date().isoformat()
    run_task("payments.daily_report", day=today)
    listed = admin.get("/admin/reconciliation", params={"day": today, "kind": "refund_overdue"})
    assert listed.status_code == 200, listed.text
    rows = {row["subject"]: row for row in listed.json()["discrepancies"]}
    assert rows[reference]["actual"] == 1000
    assert "still pending at Monnify" in rows[reference]["message"]

    complete(monnify_sim, reference, "COMPLETED")
    refund_status(db, reference, "completed")
    run_task("payments.reconcile_pending")
    assert REGISTRY.get_sample_value("refunds_overdue") == 0
