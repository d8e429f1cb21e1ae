"""The real worker runs the ledger housekeeping tasks, enqueued by name as the gateway does,
one run at a time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bson import ObjectId

from shared.ledger import LedgerReads, wallet_id


def _hold_past_its_time(runtime) -> tuple[str, str]:
    """A wallet with a hold that expired a second ago: (account, hold id)."""
    ledger = runtime.ledger()
    account = wallet_id(ObjectId(), "NGN")
    ledger.credit(f"test:{account}:fund", account, 5000)
    hold = ledger.hold(
        f"test:{account}:hold", account, 3000, datetime.now(UTC) - timedelta(seconds=1)
    )
    return account, hold.hold_id


def test_expire_holds_task_releases_holds_past_their_time(runtime, db, celery_worker):
    account, hold_id = _hold_past_its_time(runtime)

    expired = celery_worker.send_task("ledger.expire_holds").get(timeout=30)

    assert expired >= 1
    reads = LedgerReads(db)
    assert reads.hold(hold_id)["status"] == "expired"
    assert reads.wallet(account).held == 0


def test_a_periodic_job_skips_while_its_previous_run_is_going(
    runtime, db, redis_client, celery_worker
):
    from services.worker.periodic import LOCK_PREFIX  # after celery_worker set the env

    _, hold_id = _hold_past_its_time(runtime)
    previous_run = redis_client.lock(f"{LOCK_PREFIX}ledger.expire_holds", timeout=60)
    assert previous_run.acquire(blocking=False)
    try:
        skipped = celery_worker.send_task("ledger.expire_holds").get(timeout=30)
        assert skipped is None
        assert LedgerReads(db).hold(hold_id)["status"] == "open"
    finally:
        previous_run.release()

    assert celery_worker.send_task("ledger.expire_holds").get(timeout=30) >= 1
    assert LedgerReads(db).hold(hold_id)["status"] == "expired"


def test_invariant_task_reports_a_tampered_balance(runtime, db, celery_worker):
    ledger = runtime.ledger()
    account = wallet_id(ObjectId(), "NGN")
    ledger.credit(f"test:{account}:fund", account, 5000)
    db.accounts.update_one({"_id": account}, {"$inc": {"balance": 1}})
    try:
        report = celery_worker.send_task("ledger.check_invariants").get(timeout=30)
        assert {"rule": "balance_equals_journal", "subject": account, "expected": 5000,
                "actual": 5001} in report  # fmt: skip
    finally:
        db.accounts.update_one({"_id": account}, {"$inc": {"balance": -1}})


def test_a_periodic_run_keeps_its_short_lock_for_as_long_as_it_goes(
    celery_worker, redis_client, monkeypatch
):
    """The lock lives only seconds (a run killed with its process frees it that soon) and
    the run renews it while it goes: a second run meanwhile still skips."""
    from services.worker import periodic  # after celery_worker set the env

    monkeypatch.setattr(periodic, "LOCK_SECONDS", 0.3)
    monkeypatch.setattr(periodic, "RENEW_EVERY_SECONDS", 0.1)
    name = f"test.long_job.{ObjectId()}"
    second: list[object] = []

    def long_job() -> str:
        time.sleep(0.6)  # twice the lock's life
        second.append(periodic.run_alone(name, lambda: "ran twice"))
        time.sleep(0.3)
        return "done"

    assert periodic.run_alone(name, long_job) == "done"
    assert second == [None]  # skipped: the first run still held its lock
    assert not redis_client.exists(periodic.LOCK_PREFIX + name)  # released at the end
    assert periodic.run_alone(name, lambda: "again") == "again"
