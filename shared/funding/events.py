"""Processing a stored webhook event: what its type asks for, and when to try again."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from pymongo.database import Database

from shared.funding import inbox
from shared.funding.confirmation import FundingConfirmer, UnknownFunding

TRANSACTION_EVENTS = ("SUCCESSFUL_TRANSACTION", "LEGACY_TRANSACTION")
MAX_RETRY_DELAY_SECONDS = 300


@dataclass(frozen=True)
class EventOutcome:
    """`retry_or`: try again later; once out of time, mark the event with this status."""

    status: str
    note: str | None = None
    retry_or: str | None = None


def process_event(db: Database, confirmer: FundingConfirmer, event_id: ObjectId) -> EventOutcome:
    event = db.webhook_events.find_one({"_id": event_id})
    if event is None:
        return EventOutcome("missing", "no such event")
    if event["status"] != inbox.RECEIVED:
        return EventOutcome(event["status"], "already handled")
    if event.get("eventType") not in TRANSACTION_EVENTS:
        return _finish(db, event_id, inbox.IGNORED, f"event type {event.get('eventType')!r}")
    try:
        outcome = confirmer.confirm(
            payment_reference=event.get("paymentReference"),
            transaction_reference=event.get("transactionReference"),
        )
    except UnknownFunding as exc:
        return _finish(db, event_id, inbox.UNMATCHED, exc.message)
    if not outcome.settled:
        return EventOutcome(
            inbox.RECEIVED, "Monnify does not report it paid yet", retry_or=inbox.UNCONFIRMED
        )
    return _finish(db, event_id, inbox.PROCESSED, f"funding {outcome.status}")


def _finish(db: Database, event_id: ObjectId, status: str, note: str) -> EventOutcome:
    inbox.mark_event(db, event_id, status, note)
    return EventOutcome(status, note)


def retry_delay(
    db: Database, event_id: ObjectId, retries: int, window_seconds: int
) -> float | None:
    """Seconds until the next try (exponential, with jitter), or None once the event has
    waited longer than the window since it was received."""
    event = db.webhook_events.find_one({"_id": event_id}, {"receivedAt": 1})
    if event is None:
        return None
    deadline = event["receivedAt"] + timedelta(seconds=window_seconds)
    if datetime.now(UTC) >= deadline:
        return None
    delay = min(MAX_RETRY_DELAY_SECONDS, 2**retries)
    return delay / 2 + random.uniform(0, delay / 2)
