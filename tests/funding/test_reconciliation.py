"""Reconciliation on the real worker against the simulator: missed webhooks credited,
expired fundings closed, reversals found and taken back (with a receivable when the
wallet has spent the money), and the daily report with its discrepancies."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import requests
from bson import ObjectId

from shared.ledger import LedgerReads, wallet_id
from shared.ledger.accounts import receivable_id
from tests.support.funding_support import (
    credit_entries,
    funding_record,
    notify,
    pay,
    reverse,
    sim,
    transaction_path,
)
from tests.support.polling import wait_until
from tests.support.users import make_admin, signup

OLD_ENOUGH = 1.1  # RECONCILE_PENDING_AFTER_SECONDS is 1 in the tests


def test_a_missed_webhook_costs_nothing(monnify_sim, user, db, run_task):
    funding = user.fund(5000)
    pay(monnify_sim, funding, notify=False)
    time.sleep(OLD_ENOUGH)
    result = run_task("payments.reconcile_pending")
    assert result["open"]["credited"] >= 1
    assert user.balance()["balance"] == 5000
    run_task("payments.reconcile_pending")  # again: nothing more
    assert user.balance()["balance"] == 5000
    assert credit_entries(db, funding) == 1
    assert funding_record(db, funding)["reconciledAt"]


def test_an_expired_funding_is_closed(monnify_sim, user, db, run_task):
    funding = user.fund(5000)
    sim(monnify_sim, transaction_path(funding["transactionReference"], "expire"))
    time.sleep(OLD_ENOUGH)
    run_task("payments.reconcile_pending")
    assert funding_record(db, funding)["status"] == "expired"
    assert user.balance()["balance"] == 0


def test_a_reversal_is_found_by_reconciliation_and_taken_back(monnify_sim, user, db, run_task):
    funding = user.fund(5000)
    pay(monnify_sim, funding)
    user.wait_for_balance(5000)
    reverse(monnify_sim, funding)  # Monnify sends no event for this
    result = run_task("payments.reconcile_pending")
    assert result["credited"]["reversed"] >= 1
    after = user.balance()
    assert (after["balance"], after["restricted"]) == (0, False)
    assert funding_record(db, funding)["status"] == "reversed"
    reversal = LedgerReads(db).entry(f"monnify:{funding['transactionReference']}:reversal")
    assert reversal["kind"] == "reversal"


def test_a_reversal_of_spent_money_leaves_a_receivable_repaid_by_the_next_funding(
    monnify_sim, user, db, runtime
):
    funding = user.fund(5000)
    pay(monnify_sim, funding)
    user.wait_for_balance(5000)
    wallet = wallet_id(ObjectId(user.id), "NGN")
    expires = datetime.now(UTC) + timedelta(minutes=10)
    # A call in progress holds 3000 of it.
    runtime.ledger().hold(f"test-call-{ObjectId()}", wallet, 300000, expires)

    reverse(monnify_sim, funding)
    notify(monnify_sim, funding)  # the new state, pushed by a redelivered notification
    # The 2000 available is taken back, the rest owed, and the wallet restricted.
    reversed_ = wait_until(user.balance, lambda body: body["restricted"])
    assert (reversed_["balance"], reversed_["held"], reversed_["available"]) == (3000, 3000, 0)
    receivable = receivable_id(ObjectId(user.id), "NGN")
    assert LedgerReads(db).wallet(receivable).balance == -300000

    second = user.fund(4000)
    pay(monnify_sim, second)
    # 4000 credited, 3000 of it repays what is owed.
    repaid = wait_until(user.balance, lambda body: not body["restricted"])
    assert (repaid["balance"], repaid["held"], repaid["available"]) == (4000, 3000, 1000)
    assert LedgerReads(db).wallet(receivable).balance == 0
    assert funding_record(db, second)["status"] == "paid"


def test_daily_report_lists_discrepancies_for_admins(
    gateway, monnify_sim, user, db, runtime, run_task
):
    good = user.fund(5000)
    pay(monnify_sim, good)
    user.wait_for_balance(5000)
    # Money moved for a funding Monnify still reports unpaid: a discrepancy.
    unpaid = user.fund(2000)
    runtime.ledger().credit(
        f"test-stray-{ObjectId()}",
        wallet_id(ObjectId(user.id), "NGN"),
        200000,
        reference=unpaid["transactionReference"],
    )

    today = datetime.now(UTC).date().isoformat()
    summary = run_task("payments.daily_report", day=today)
    assert summary["day"] == today and summary["discrepancies"] >= 1
    assert summary["fundingsChecked"] >= 2

    admin = make_admin(db, signup(gateway))
    listed = admin.get("/admin/reconciliation", params={"day": today, "kind": "amount_mismatch"})
    assert listed.status_code == 200, listed.text
    assert listed.json()["latestReport"]["day"] == today
    rows = listed.json()["discrepancies"]
    while "next" in listed.links:  # every page, by the Link header
        listed = requests.get(listed.links["next"]["url"], headers=admin.headers, timeout=10)
        rows += listed.json()["discrepancies"]
    assert {row["kind"] for row in rows} == {"amount_mismatch"}
    by_subject = {row["subject"]: row for row in rows}
    mismatch = by_subject[unpaid["paymentReference"]]
    assert (mismatch["kind"], mismatch["expected"], mismatch["actual"]) == (
        "amount_mismatch",
        0,
        2000,
    )
    assert good["paymentReference"] not in by_subject
    assert (
        db.reconciliation_discrepancies.count_documents({"day": today}) == summary["discrepancies"]
    )
    assert user.get("/admin/reconciliation").status_code == 403

    # Every discrepancy of the day, page by page, each once.
    seen, url = [], f"{gateway}/admin/reconciliation?day={today}&limit=100"
    while url:
        page = requests.get(url, headers=admin.headers, timeout=10)
        seen += [row["id"] for row in page.json()["discrepancies"]]
        url = page.links.get("next", {}).get("url")
    assert len(seen) == len(set(seen)) == summary["discrepancies"]


def test_a_flagged_funding_is_reported(monnify_sim, user, db, run_task):
    funding = user.fund(5000)
    pay(monnify_sim, funding)
    user.wait_for_balance(5000)
    db.fundings.update_one(
        {"_id": funding["paymentReference"]}, {"$set": {"discrepancy": "test: flagged"}}
    )
    run_task("payments.daily_report", day=datetime.now(UTC).date().isoformat())
    flagged = db.reconciliation_discrepancies.find_one(
        {"kind": "funding_flagged", "subject": funding["paymentReference"]}
    )
    assert flagged["message"] == "test: flagged"
