"""The real worker runs the ledger housekeeping tasks, enqueued by name as the gateway does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bson import ObjectId

from shared.ledger import Ledger, wallet_id


def test_expire_holds_task_releases_holds_past_their_time(settings, db, celery_worker):
    ledger = Ledger.from_settings(settings)
    account = wallet_id(ObjectId(), "NGN")
    ledger.credit(f"test:{account}:fund", account, 5000)
    hold = ledger.hold(
        f"test:{account}:hold", account, 3000, datetime.now(UTC) - timedelta(seconds=1)
    )

    expired = celery_worker.send_task("ledger.expire_holds").get(timeout=30)

    assert expired >= 1
    assert db.holds.find_one({"_id": hold.hold_id})["status"] == "expired"
    assert db.accounts.find_one({"_id": account})["held"] == 0


def test_invariant_task_reports_a_tampered_balance(settings, db, celery_worker):
    ledger = Ledger.from_settings(settings)
    account = wallet_id(ObjectId(), "NGN")
    ledger.credit(f"test:{account}:fund", account, 5000)
    db.accounts.update_one({"_id": account}, {"$inc": {"balance": 1}})
    try:
        report = celery_worker.send_task("ledger.check_invariants").get(timeout=30)
        assert {"rule": "balance_equals_postings", "subject": account, "expected": 5000,
                "actual": 5001} in report  # fmt: skip
    finally:
        db.accounts.update_one({"_id": account}, {"$inc": {"balance": -1}})
