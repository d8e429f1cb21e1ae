"""The webhook inbox: every authenticated notification is stored before anything else,
so nothing Monnify was told we received can be lost. Processing happens in a task.

`process` is an event's whole turn: claim the events waiting with it, have the caller's
function say what each one came to (an `EventOutcome`; what each type of webhook event
means is in `shared.funding.webhook_events`), decide from that whether and when to try
again, and write every event's new state in one command. The task only sends the
retries it is told of.

A task claims the events waiting together (its own and others already due, `claim_batch`)
so a burst is processed in batches; the claim is a lease, so events whose worker died
go back to waiting when it runs out, and the requeue job sends them again. A batch is
named by its task: when the task's worker process is killed mid-batch, the broker hands
the same task out again at once, and it takes its batch back instead of waiting out the
lease.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.exact_json import loads_exact
from shared.funding.config import MAX_TASK_RETRY_DELAY_SECONDS
from shared.logs import get_logger
from shared.metrics import CONFIRMATION_BATCH_SIZE, CONFIRMATION_FAILURES

log = get_logger(__name__)

RECEIVED = "received"  # stored, waiting for (or in) processing
PROCESSED = "processed"
MALFORMED = "malformed"  # authentic but not JSON: kept for review
IGNORED = "ignored"  # an event type we don't act on: kept for review
UNMATCHED = "unmatched"  # names no funding or refund of ours: kept for review
UNCONFIRMED = "unconfirmed"  # Monnify's status API never confirmed it: reconciliation's
FAILED = "failed"  # processing kept failing: reconciliation's, or an admin requeue
REVIEW_STATUSES = (MALFORMED, IGNORED, UNMATCHED, UNCONFIRMED, FAILED)
STATUSES = (RECEIVED, PROCESSED, *REVIEW_STATUSES)
# Longer than a batch takes unless Monnify is slow. A claim that outlives its batch lets
# a second worker in, and the ledger's idempotency keys, not the claim, keep that
# harmless; a claim that outlives a dead worker (its parent killed, Redis restarted: the
# task is not handed out again until the broker's visibility timeout) holds its events
# back, so it is kept short: with the requeue job they are sent again within about
# INBOX_REQUEUE_AFTER_SECONDS (default 60) plus its 30 s period (bench/chaos.py).
CLAIM_SECONDS = 60
# `batch` names the claim; a settled event keeps it, to show what it was confirmed with.
_UNCLAIM = {"batch": "", "claimedUntil": ""}
ALREADY_HANDLED = "already handled"  # what `process` answers for an event another took


@dataclass(frozen=True)
class StoredEvent:
    event_id: ObjectId
    duplicate: bool
    processable: bool


@dataclass(frozen=True)
class EventOutcome:
    """What one try of an event came to. `retry_or`: try again later; once out of time,
    mark the event with this status."""

    status: str
    note: str | None = None
    retry_or: str | None = None


# The caller's processing: each claimed event's outcome, keyed by its _id; it writes
# nothing to the events.
ProcessBatch = Callable[[list[dict[str, Any]]], dict[ObjectId, EventOutcome]]


@dataclass(frozen=True)
class Processed:
    """What `process` did: the status the event asked about is left in, and the events
    to send again, each with the seconds until its next try."""

    status: str
    retries: dict[ObjectId, float]


@dataclass(frozen=True)
class _Step:
    """What becomes of an event after a try: its update, the status it is left in, and
    the seconds until its next try (None: no more tries)."""

    update: UpdateOne
    status: str
    retry_in: float | None = None


def parse_body(raw: bytes) -> dict[str, Any] | None:
    """The notification as a dict (numbers as Decimal), or None if it isn't a JSON object
    we can store and index (lone surrogates, NaN, nesting past the recursion limit)."""
    try:
        body = loads_exact(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def event_fields(body: dict[str, Any] | None) -> dict[str, Any]:
    """What we index an event by: its type and references (flat legacy bodies too)."""
    if body is None:
        return {"eventType": None}
    data = body.get("eventData") if isinstance(body.get("eventData"), dict) else body
    product = data.get("product") if isinstance(data.get("product"), dict) else {}
    fields = {
        "eventType": body.get("eventType")
        or ("LEGACY_TRANSACTION" if "eventData" not in body else None),
        "transactionReference": data.get("transactionReference"),
        "paymentReference": data.get("paymentReference"),
        "refundReference": data.get("refundReference"),
        # A transfer into a reserved account names the account here.
        "productType": product.get("type"),
        "productReference": product.get("reference"),
    }
    return {key: value for key, value in fields.items() if isinstance(value, str) or value is None}


def store_event(
    db: Database, raw: bytes, *, verified_by: str, source_ip: str | None
) -> StoredEvent:
    """Insert the event, or count a repeated delivery of the same bytes."""
    body = parse_body(raw)
    now = datetime.now(UTC)
    document = {
        "_id": ObjectId(),
        "dedupeKey": hashlib.sha256(raw).hexdigest(),
        "body": raw.decode("utf-8", errors="replace"),
        "status": RECEIVED if body is not None else MALFORMED,
        "verifiedBy": verified_by,
        "sourceIp": source_ip,
        "deliveries": 1,
        "receivedAt": now,
        "retryAt": now,  # due at once (`events_to_requeue`)
        "updatedAt": now,
        **event_fields(body),
    }
    try:
        db.webhook_events.insert_one(document)
        return StoredEvent(document["_id"], False, body is not None)
    except DuplicateKeyError:
        return _count_redelivery(db, document["dedupeKey"], now)


def _count_redelivery(db: Database, dedupe_key: str, now: datetime) -> StoredEvent:
    """A repeat of an event that gave up waiting for Monnify is tried again; a repeat of
    one already settled changes nothing."""
    # An update then a read by the unique dedupe key, not findAndModify, which the
    # embedded server runs as a walk of every event.
    by_key = {"dedupeKey": dedupe_key}
    db.webhook_events.update_one(
        by_key, {"$inc": {"deliveries": 1}, "$set": {"lastDeliveryAt": now}}
    )
    existing = db.webhook_events.find_one(by_key, {"status": 1})
    if existing["status"] in (UNCONFIRMED, FAILED):
        revive_event(db, existing["_id"], "delivered again")
        return StoredEvent(existing["_id"], True, True)
    return StoredEvent(existing["_id"], True, existing["status"] == RECEIVED)


def process(
    db: Database,
    event_id: ObjectId,
    process_batch: ProcessBatch,
    *,
    limit: int,
    window_seconds: int,
    batch: str | None = None,
) -> Processed:
    """Claim this event with others waiting (`claim_batch`), have `process_batch` find
    their outcomes, then write each one's next step: final, or due again after a backoff
    while its retry window (`window_seconds` since received or revived) lasts."""
    claimed = claim_batch(db, event_id, limit, batch)
    if not claimed:
        return Processed(ALREADY_HANDLED, {})
    try:
        outcomes = process_batch(claimed)
    except Exception:
        release_claims(db, [event["_id"] for event in claimed])
        raise
    CONFIRMATION_BATCH_SIZE.observe(len(claimed))
    steps = {e["_id"]: _next_step(e, outcomes[e["_id"]], window_seconds) for e in claimed}
    write_updates(db, [step.update for step in steps.values()])
    retries = {i: step.retry_in for i, step in steps.items() if step.retry_in is not None}
    return Processed(steps[event_id].status if event_id in steps else ALREADY_HANDLED, retries)


def _next_step(event: dict[str, Any], outcome: EventOutcome, window_seconds: int) -> _Step:
    event_id = event["_id"]
    if outcome.retry_or is None:
        return _Step(finish_update(event_id, outcome.status, outcome.note), outcome.status)
    delay = _retry_delay(event, window_seconds)
    if delay is None:
        # Out of time: reconciliation (or an admin requeue) takes it from here.
        log.error("webhook_event_gave_up", event_id=str(event_id), reason=outcome.note)
        CONFIRMATION_FAILURES.labels(outcome.retry_or).inc()
        update = finish_update(event_id, outcome.retry_or, outcome.note)
        return _Step(update, outcome.retry_or)
    log.info("webhook_event_retry", event_id=str(event_id), reason=outcome.note, delay=delay)
    return _Step(retry_update(event_id, delay, outcome.note), outcome.status, delay)


def _retry_delay(event: dict[str, Any], window_seconds: int) -> float | None:
    """Seconds until the next try (exponential in the event's tries so far, with jitter),
    or None once it has waited longer than the window since received (or revived)."""
    deadline = window_start(event) + timedelta(seconds=window_seconds)
    if datetime.now(UTC) >= deadline:
        return None
    delay = min(MAX_TASK_RETRY_DELAY_SECONDS, 2 ** event.get("attempts", 0))
    return delay / 2 + random.uniform(0, delay / 2)


def claim_batch(
    db: Database, event_id: ObjectId, limit: int, batch: str | None = None
) -> list[dict[str, Any]]:
    """Claim this event if it still waits, with the oldest other waiting events that are
    due, up to `limit` in all; returns what this call claimed. An event another batch
    took (most of a burst's tasks) costs one look-up by _id: every waiting event still
    has a task of its own coming (or a retry, or the requeue job), so none is left.

    `batch` names the claim (the task's id): events an earlier run of the same task
    claimed and left waiting (it was killed) are taken back first, whatever their lease."""
    now = datetime.now(UTC)
    lease = {
        "batch": batch or str(ObjectId()),
        "claimedUntil": now + timedelta(seconds=CLAIM_SECONDS),
    }
    if batch is not None:
        mine = {"batch": batch, "status": RECEIVED}
        if db.webhook_events.update_many(mine, {"$set": lease}).modified_count:
            return list(db.webhook_events.find(mine))
    waiting = {"status": RECEIVED, "claimedUntil": {"$not": {"$gt": now}}}
    if db.webhook_events.find_one({"_id": event_id, **waiting}, {"_id": 1}) is None:
        return []
    others = islice((e["_id"] for e in _due(db, now) if e["_id"] != event_id), limit - 1)
    ids = [event_id, *others]
    db.webhook_events.update_many({**waiting, "_id": {"$in": ids}}, {"$set": lease})
    return list(db.webhook_events.find({"_id": {"$in": ids}, "batch": lease["batch"]}))


def release_claims(db: Database, event_ids: list[ObjectId]) -> None:
    """A batch that failed as a whole gives its events back at once, for the requeue job."""
    db.webhook_events.update_many({"_id": {"$in": event_ids}}, {"$unset": _UNCLAIM})


def finish_update(event_id: ObjectId, status: str, note: str | None = None) -> UpdateOne:
    """The event's final status (or one for review), its claim released."""
    fields: dict[str, Any] = {"status": status, "updatedAt": datetime.now(UTC)}
    if note:
        fields["note"] = note
    return UpdateOne({"_id": event_id}, {"$set": fields, "$unset": {"claimedUntil": ""}})


def retry_update(event_id: ObjectId, delay_seconds: float, note: str | None) -> UpdateOne:
    """Still waiting: tried once more, due again in `delay_seconds` (the requeue job
    leaves it alone until then), its claim released."""
    now = datetime.now(UTC)
    fields = {"retryAt": now + timedelta(seconds=delay_seconds), "note": note, "updatedAt": now}
    update = {"$set": fields, "$inc": {"attempts": 1}, "$unset": _UNCLAIM}
    return UpdateOne({"_id": event_id}, update)


def write_updates(db: Database, updates: list[UpdateOne]) -> None:
    """A batch's events in one command."""
    if updates:
        db.webhook_events.bulk_write(updates, ordered=False)


def stored_event(db: Database, event_id: ObjectId) -> dict[str, Any] | None:
    return db.webhook_events.find_one({"_id": event_id})


def revive_event(
    db: Database, event_id: ObjectId, note: str, *, session: ClientSession | None = None
) -> None:
    """Back to `received` with a fresh retry window (a redelivery, an admin's requeue);
    the caller enqueues it now, so the requeue job counts from now too. `session`: the
    transaction it belongs to (an admin's requeue is recorded in the same one)."""
    now = datetime.now(UTC)
    db.webhook_events.update_one(
        {"_id": event_id},
        {
            "$set": {
                "status": RECEIVED,
                "note": note,
                "revivedAt": now,
                "retryAt": now,
                "updatedAt": now,
                "attempts": 0,
            }
        },
        session=session,
    )


def window_start(event: dict[str, Any]) -> datetime:
    """When the event's current retry window began."""
    return event.get("revivedAt") or event["receivedAt"]


def schedule_retry(db: Database, event_id: ObjectId, delay_seconds: float) -> None:
    """Note when a task will try again, so the requeue job leaves the event alone until
    then instead of starting a second chain of retries."""
    retry_at = datetime.now(UTC) + timedelta(seconds=delay_seconds)
    db.webhook_events.update_one({"_id": event_id}, {"$set": {"retryAt": retry_at}})


def events_to_requeue(db: Database, older_than_seconds: int, limit: int = 200) -> list[ObjectId]:
    """Events stored but not processed in time (the queue was down, or a task was lost):
    received long enough ago, and not waiting for a retry that is still due."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    return [event["_id"] for event in islice(_due(db, cutoff), limit)]


def _due(db: Database, by: datetime) -> Iterator[dict[str, Any]]:
    """Waiting events due by `by` and in no live batch, the longest due first.

    Every event is stored due (`retryAt` = when received), so one range on the
    events_due index serves the never-tried and the retried alike; a live claim is
    skipped as read: a filter on a field the index lacks (or an $or) makes the embedded
    server walk every event."""
    now = datetime.now(UTC)
    selector = {"status": RECEIVED, "retryAt": {"$lte": by}}
    cursor = db.webhook_events.find(selector, {"claimedUntil": 1}).sort("retryAt", 1)
    with cursor:
        for event in cursor:
            if _aware(event.get("claimedUntil")) <= now:
                yield event


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def settle_waiting_events(db: Database, payment_reference: str, note: str) -> int:
    """Events that gave up on a funding another path (reconciliation) has now settled."""
    result = db.webhook_events.update_many(
        {"paymentReference": payment_reference, "status": {"$in": [UNCONFIRMED, FAILED]}},
        {"$set": {"status": PROCESSED, "note": note, "updatedAt": datetime.now(UTC)}},
    )
    return result.modified_count
