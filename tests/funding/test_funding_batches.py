"""Webhook events confirmed in batches: what a task claims, and a batch that mixes every
kind of outcome, each event ending as it would alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from shared.funding import inbox
from shared.indexes import ensure_indexes
from shared.settings import load_settings
from tests.support.funding_support import credit_entries, funding_record, notification, pay
from tests.support.polling import wait_until


@pytest.fixture()
def inbox_db(db):
    """A database of the test's own: a claim looks at every waiting event."""
    name = f"inbox_{uuid.uuid4().hex[:10]}"
    database = db.client[name]
    ensure_indexes(database)
    yield database
    db.client.drop_database(name)


def store(database, label: str) -> ObjectId:
    body = notification({"transactionReference": f"MNFY|{label}", "paymentReference": label}, 5)
    return inbox.store_event(database, body, verified_by="signature", source_ip=None).event_id


def batch_of(database, event_id: ObjectId) -> ObjectId | None:
    return database.webhook_events.find_one({"_id": event_id}).get("batch")


def test_a_task_claims_its_event_and_the_others_waiting_once(inbox_db):
    first, second, third = (store(inbox_db, f"FND-{n}") for n in range(3))

    claimed = inbox.claim_batch(inbox_db, second, 10)

    assert {event["_id"] for event in claimed} == {first, second, third}
    assert len({batch_of(inbox_db, e) for e in (first, second, third)}) == 1
    assert inbox.claim_batch(inbox_db, third, 10) == []  # taken: its task has nothing to do
    assert inbox.claim_batch(inbox_db, ObjectId(), 10) == []


def test_an_event_waiting_for_its_retry_is_claimed_only_by_its_own_task(inbox_db):
    waiting, other = store(inbox_db, "FND-waiting"), store(inbox_db, "FND-other")
    inbox.schedule_retry(inbox_db, waiting, 60)

    assert [e["_id"] for e in inbox.claim_batch(inbox_db, other, 10)] == [other]
    assert [e["_id"] for e in inbox.claim_batch(inbox_db, waiting, 10)] == [waiting]


def test_a_lapsed_claim_or_a_released_one_can_be_claimed_again(inbox_db):
    lapsed, released = store(inbox_db, "FND-lapsed"), store(inbox_db, "FND-released")
    inbox.claim_batch(inbox_db, lapsed, 10)
    past = datetime.now(UTC) - timedelta(seconds=1)
    inbox_db.webhook_events.update_one({"_id": lapsed}, {"$set": {"claimedUntil": past}})
    inbox.release_claims(inbox_db, [released])

    again = inbox.claim_batch(inbox_db, lapsed, 10)

    assert {event["_id"] for event in again} == {lapsed, released}
    assert inbox.events_to_requeue(inbox_db, 0) == []  # claimed: not the requeue job's


def test_a_task_run_again_after_its_process_died_takes_its_batch_back_at_once(inbox_db):
    """The broker hands a task killed mid-batch out again (acks_late, reject on worker
    lost); its events are still under the dead run's lease, which only it may skip."""
    first, second = store(inbox_db, "FND-first"), store(inbox_db, "FND-second")
    claimed = inbox.claim_batch(inbox_db, first, 10, batch="task-1")  # then killed
    assert {event["_id"] for event in claimed} == {first, second}

    assert inbox.claim_batch(inbox_db, second, 10, batch="task-2") == []  # another task
    again = inbox.claim_batch(inbox_db, first, 10, batch="task-1")

    assert {event["_id"] for event in again} == {first, second}
    inbox.write_updates(
        inbox_db, [inbox.finish_update(e, inbox.PROCESSED) for e in (first, second)]
    )
    assert inbox.claim_batch(inbox_db, first, 10, batch="task-1") == []  # settled: nothing


def test_a_dead_workers_claim_lapses_by_the_time_the_requeue_job_sends_its_events():
    """A task lost with its worker's parent (or with Redis) is handed out again only after
    the broker's visibility timeout; until its claim lapses, the requeue job skips it."""
    assert load_settings({}).inbox_requeue_after_seconds >= inbox.CLAIM_SECONDS


def test_a_batch_mixing_every_outcome_settles_each_event_as_alone(
    gateway, monnify_sim, db, user, celery_worker
):
    """Two paid fundings of one wallet (one notified twice, in different bytes), one
    Monnify does not report paid yet, one that is not ours, and one naming a transaction
    that belongs to another funding: one task claims them all."""
    paid, also_paid, unpaid, misnamed = (user.fund(amount) for amount in (5000, 3000, 2000, 900))
    pay(monnify_sim, paid, notify=False)
    pay(monnify_sim, also_paid, notify=False)
    unknown = {"transactionReference": "MNFY|not-ours", "paymentReference": "FND-not-ours"}
    # A funding whose own transactionReference was never recorded, notified with another's.
    reference = {"_id": misnamed["paymentReference"]}
    db.fundings.update_one(reference, {"$unset": {"transactionReference": ""}})
    misnamed_with_paid = {**misnamed, "transactionReference": paid["transactionReference"]}
    bodies = [
        notification(paid, 5000),
        notification(paid, 9999),  # other bytes, the same funding
        notification(also_paid, 3000),
        notification(unpaid, 2000),
        notification(unknown, 100),
        notification(misnamed_with_paid, 5000),
    ]
    ids = [
        inbox.store_event(db, body, verified_by="signature", source_ip=None).event_id
        for body in bodies
    ]  # stored, not enqueued: the task sent below is the only one

    celery_worker.send_task("payments.process_event", kwargs={"event_id": str(ids[0])})

    settled = [ids[0], ids[1], ids[2], ids[4], ids[5]]
    statuses = wait_until(
        lambda: [db.webhook_events.find_one({"_id": i})["status"] for i in settled],
        lambda found: "received" not in found,
    )
    assert statuses == ["processed", "processed", "processed", "unmatched", "unmatched"]
    assert funding_record(db, misnamed)["status"] == "pending"
    user.wait_for_balance(8000)
    assert credit_entries(db, paid) == credit_entries(db, also_paid) == 1
    assert funding_record(db, also_paid)["status"] == "paid"
    assert credit_entries(db, unpaid) == 0
    # Not paid yet: retried on its own, then left to reconciliation after the window.
    final = wait_until(
        lambda: db.webhook_events.find_one({"_id": ids[3]}),
        lambda event: event["status"] != "received",
    )
    assert final["status"] == "unconfirmed" and final["attempts"] >= 1
    assert user.balance()["balance"] == 8000
