"""Payment tasks: process webhook events, requeue the inbox, reconcile pending fundings."""

from __future__ import annotations

from bson import ObjectId
from celery import Task

from services.worker import context
from services.worker.celery_app import celery
from shared.errors import Conflict
from shared.funding import events, inbox
from shared.funding.confirmation import FundingConfirmer
from shared.logs import get_logger
from shared.monnify.errors import MonnifyError

log = get_logger(__name__)


def confirmer() -> FundingConfirmer:
    return FundingConfirmer(context.db(), context.ledger(), context.monnify())


@celery.task(bind=True, name="payments.process_event", max_retries=None)
def process_event(self: Task, event_id: str) -> str:
    """Confirm what a stored webhook reports, retrying while Monnify lags or is down."""
    oid = ObjectId(event_id)
    db = context.db()
    try:
        outcome = events.process_event(db, confirmer(), oid)
    except (MonnifyError, Conflict) as exc:  # Monnify down or odd, or the wallet busy
        note = f"{type(exc).__name__}: {exc}"
        outcome = events.EventOutcome(inbox.RECEIVED, note, retry_or=inbox.FAILED)
    if outcome.retry_or is None:
        return outcome.status
    window = context.settings().confirmation_retry_window_seconds
    delay = events.retry_delay(db, oid, self.request.retries, window)
    if delay is None:
        # Out of time: reconciliation (or an admin requeue) takes it from here.
        inbox.mark_event(db, oid, outcome.retry_or, outcome.note)
        log.error("webhook_event_gave_up", event_id=event_id, reason=outcome.note)
        return outcome.retry_or
    log.info("webhook_event_retry", event_id=event_id, reason=outcome.note, delay=delay)
    raise self.retry(countdown=delay)


@celery.task(name="payments.requeue_inbox")
def requeue_inbox() -> int:
    """Enqueue events stored while the queue was unreachable, or whose task was lost."""
    after = context.settings().inbox_requeue_after_seconds
    event_ids = inbox.events_to_requeue(context.db(), after)
    for event_id in event_ids:
        process_event.delay(str(event_id))
    return len(event_ids)
