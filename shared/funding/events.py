"""Processing a stored webhook event: what its type asks for, and when to try again."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.database import Database

from shared.funding import inbox, refunds
from shared.funding.confirmation import FundingConfirmer, UnknownFunding
from shared.funding.refunds import Refunds, UnknownRefund

TRANSACTION_EVENTS = ("SUCCESSFUL_TRANSACTION", "LEGACY_TRANSACTION")
REFUND_EVENTS = ("SUCCESSFUL_REFUND", "FAILED_REFUND")
MAX_RETRY_DELAY_SECONDS = 300


@dataclass(frozen=True)
class EventOutcome:
    """`retry_or`: try again later; once out of time, mark the event with this status."""

    status: str
    note: str | None = None
    retry_or: str | None = None


def process_event(
    db: Database, confirmer: FundingConfirmer, refunder: Refunds, event_id: ObjectId
) -> EventOutcome:
    event = db.webhook_events.find_one({"_id": event_id})
    if event is None:
        return EventOutcome("missing", "no such event")
    if event["status"] != inbox.RECEIVED:
        return EventOutcome(event["status"], "already handled")
    if event.get("eventType") in TRANSACTION_EVENTS:
        return _confirm_transaction(db, confirmer, event)
    if event.get("eventType") in REFUND_EVENTS:
        return _settle_refund(db, refunder, event)
    return _finish(db, event_id, inbox.IGNORED, f"event type {event.get('eventType')!r}")


def _confirm_transaction(
    db: Database, confirmer: FundingConfirmer, event: dict[str, Any]
) -> EventOutcome:
    event_id = event["_id"]
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


def _settle_refund(db: Database, refunder: Refunds, event: dict[str, Any]) -> EventOutcome:
    """Refund notifications, like payments, are only a cue: the refund status API decides."""
    try:
        status = refunder.settle(event.get("refundReference"))
    except UnknownRefund as exc:
        return _finish(db, event["_id"], inbox.UNMATCHED, exc.message)
    if status in refunds.OPEN_STATUSES:
        return EventOutcome(
            inbox.RECEIVED,
            "Monnify does not report the refund final yet",
            retry_or=inbox.UNCONFIRMED,
        )
    return _finish(db, event["_id"], inbox.PROCESSED, f"refund {status}")


def _finish(db: Database, event_id: ObjectId, status: str, note: str) -> EventOutcome:
    inbox.mark_event(db, event_id, status, note)
    return EventOutcome(status, note)


def retry_delay(
    db: Database, event_id: ObjectId, retries: int, window_seconds: int
) -> float | None:
    """Seconds until the next try (exponential, with jitter), or None once the event has
    waited longer than the window since it was received (or revived)."""
    event = db.webhook_events.find_one({"_id": event_id}, {"receivedAt": 1, "revivedAt": 1})
    if event is None:
        return None
    deadline = inbox.window_start(event) + timedelta(seconds=window_seconds)
    if datetime.now(UTC) >= deadline:
        return None
    delay = min(MAX_RETRY_DELAY_SECONDS, 2**retries)
    return delay / 2 + random.uniform(0, delay / 2)
