"""Payment tasks: process webhook events, requeue the inbox, reconcile fundings and
refunds with Monnify, and the daily report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from bson import ObjectId

from services.worker import context
from services.worker.celery_app import celery
from services.worker.periodic import periodic
from shared.funding import events, inbox, reconciliation
from shared.funding.confirmation import FundingConfirmer
from shared.funding.jobs import (
    DAILY_REPORT_TASK,
    PROCESS_EVENT_TASK,
    RECONCILE_TASK,
    REQUEUE_INBOX_TASK,
)
from shared.funding.refunds import Refunds
from shared.logs import get_logger
from shared.metrics import CONFIRMATION_BATCH_SIZE
from shared.payouts import Withdrawals

log = get_logger(__name__)

# Events one task confirms together: enough to share the commands of a burst, few
# enough that a batch's status calls (LOOKUP_THREADS at a time) finish in a second or two.
BATCH_SIZE = 50


def confirmer() -> FundingConfirmer:
    return FundingConfirmer(context.db(), context.ledger(), context.monnify())


def refunder() -> Refunds:
    return Refunds(context.db(), context.ledger(), context.monnify())


def withdrawals() -> Withdrawals:
    return Withdrawals(
        context.db(), context.ledger(), context.monnify(), context.settings().payouts
    )


# Its outcome lives on the stored events; no result (nor STARTED state) is kept in Redis,
# which saves two writes per task, most of them for events an earlier batch settled.
@celery.task(name=PROCESS_EVENT_TASK, ignore_result=True)
def process_event(event_id: str) -> str:
    """Confirm what stored webhooks report: this event and the others waiting with it,
    together (a burst queues one task per event; the first takes a batch, the rest find
    theirs done). Each event that Monnify has not settled is tried again on its own."""
    oid = ObjectId(event_id)
    db = context.db()
    # Named by the task's id: delivered again after its process was killed mid-batch
    # (acks_late, reject on worker lost), it takes that batch back at once.
    batch = inbox.claim_batch(db, oid, BATCH_SIZE, process_event.request.id)
    if not batch:
        return "already handled"
    try:
        outcomes = events.process_batch(confirmer(), refunder(), batch, withdrawals())
    except Exception:
        inbox.release_claims(db, [event["_id"] for event in batch])
        raise
    CONFIRMATION_BATCH_SIZE.observe(len(batch))
    window = context.settings().confirmation_retry_window_seconds
    steps = {e["_id"]: events.next_step(e, outcomes[e["_id"]], window) for e in batch}
    inbox.write_updates(db, [step.update for step in steps.values()])
    for retried, step in steps.items():
        if step.retry_in is not None:  # sent only now that its retryAt is written
            process_event.apply_async((str(retried),), countdown=step.retry_in)
    return steps[oid].status if oid in steps else "already handled"


@periodic(REQUEUE_INBOX_TASK)
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


@periodic(RECONCILE_TASK)
def reconcile_pending() -> dict[str, Any]:
    """Settle what webhooks did not: open fundings (a missed webhook costs nothing),
    reversals of recent credits (Monnify sends no reversal event), open refunds, and
    transfers into reserved accounts whose webhook was lost."""
    current = context.settings()
    reconciler = reconciliation.Reconciler(context.db(), confirmer(), refunder())
    return {
        "open": reconciler.settle_open_fundings(current.reconcile_pending_after_seconds).as_dict(),
        "credited": reconciler.recheck_credited_fundings(
            lookback_seconds=current.reconcile_credited_lookback_seconds,
            every_seconds=current.reconcile_credited_every_seconds,
        ).as_dict(),
        "refunds": reconciler.poll_refunds(
            review_after_seconds=current.refund_review_after_seconds
        ).as_dict(),
        "reservedAccounts": reconciler.scan_reserved_accounts().as_dict(),
    }


@periodic(DAILY_REPORT_TASK)
def daily_report(day: str | None = None) -> dict[str, Any]:
    """Compare a day (default: yesterday, UTC) of the gateway clearing account with
    Monnify's view of that day's fundings, and check the ledger's invariants."""
    report_day = date.fromisoformat(day) if day else (datetime.now(UTC) - timedelta(days=1)).date()
    current = context.settings()
    report = reconciliation.daily_report(
        context.db(),
        context.monnify(),
        report_day,
        settle_seconds=current.invariants_settle_seconds,
        refund_review_after_seconds=current.refund_review_after_seconds,
    )
    return reconciliation.report_summary(report)
