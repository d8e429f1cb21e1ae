"""Payment tasks: process webhook events, requeue the inbox, reconcile fundings and
refunds with Monnify, and the daily report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from bson import ObjectId
from celery import Task

from services.worker import context
from services.worker.celery_app import celery
from services.worker.periodic import periodic
from shared.errors import Conflict
from shared.funding import events, inbox, reconciliation
from shared.funding.confirmation import FundingConfirmer
from shared.funding.refunds import Refunds
from shared.logs import get_logger
from shared.metrics import CONFIRMATION_FAILURES
from shared.monnify.errors import MonnifyError

log = get_logger(__name__)


def confirmer() -> FundingConfirmer:
    return FundingConfirmer(context.db(), context.ledger(), context.monnify())


def refunder() -> Refunds:
    return Refunds(context.db(), context.ledger(), context.monnify())


@celery.task(bind=True, name="payments.process_event", max_retries=None)
def process_event(self: Task, event_id: str) -> str:
    """Confirm what a stored webhook reports, retrying while Monnify lags or is down."""
    oid = ObjectId(event_id)
    db = context.db()
    try:
        outcome = events.process_event(db, confirmer(), refunder(), oid)
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
        CONFIRMATION_FAILURES.labels(outcome.retry_or).inc()
        return outcome.retry_or
    log.info("webhook_event_retry", event_id=event_id, reason=outcome.note, delay=delay)
    inbox.schedule_retry(db, oid, delay)
    raise self.retry(countdown=delay)


@periodic("payments.requeue_inbox")
def requeue_inbox() -> int:
    """Enqueue events stored while the queue was unreachable, or whose task was lost."""
    db = context.db()
    after = context.settings().inbox_requeue_after_seconds
    event_ids = inbox.events_to_requeue(db, after)
    for event_id in event_ids:
        inbox.schedule_retry(db, event_id, 0)  # due now: the next run leaves it alone
        process_event.delay(str(event_id))
    if event_ids:
        log.warning("webhook_events_requeued", count=len(event_ids))
    return len(event_ids)


@periodic("payments.reconcile_pending")
def reconcile_pending() -> dict[str, Any]:
    """Settle what webhooks did not: open fundings (a missed webhook costs nothing),
    reversals of recent credits (Monnify sends no reversal event), and open refunds."""
    current = context.settings()
    reconciler = reconciliation.Reconciler(context.db(), confirmer(), refunder())
    return {
        "open": reconciler.settle_open_fundings(current.reconcile_pending_after_seconds).as_dict(),
        "credited": reconciler.recheck_credited_fundings(
            lookback_seconds=current.reconcile_credited_lookback_seconds,
            every_seconds=current.reconcile_credited_every_seconds,
        ).as_dict(),
        "refunds": reconciler.poll_refunds().as_dict(),
    }


@periodic("payments.daily_report")
def daily_report(day: str | None = None) -> dict[str, Any]:
    """Compare a day (default: yesterday, UTC) of the gateway clearing account with
    Monnify's view of that day's fundings, and check the ledger's invariants."""
    report_day = date.fromisoformat(day) if day else (datetime.now(UTC) - timedelta(days=1)).date()
    report = reconciliation.daily_report(context.db(), context.monnify(), report_day)
    return reconciliation.report_summary(report)
