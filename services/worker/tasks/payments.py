"""Payment tasks: process webhook events, requeue the inbox, reconcile fundings and
refunds with Monnify, and the daily report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from bson import ObjectId

from services.worker.celery_app import celery
from services.worker.periodic import periodic
from services.worker.runtime import runtime
from shared.funding import inbox, webhook_events
from shared.funding.daily_report import reconcile_day, report_summary
from shared.funding.jobs import (
    DAILY_REPORT_TASK,
    PROCESS_EVENT_TASK,
    RECONCILE_TASK,
    REQUEUE_INBOX_TASK,
)
from shared.logs import get_logger

log = get_logger(__name__)

# Events one task confirms together: enough to share the commands of a burst, few
# enough that a batch's status calls (LOOKUP_THREADS at a time) finish in a second or two.
BATCH_SIZE = 50


# Its outcome lives on the stored events; no result (nor STARTED state) is kept in Redis,
# which saves two writes per task, most of them for events an earlier batch settled.
@celery.task(name=PROCESS_EVENT_TASK, ignore_result=True)
def process_event(event_id: str) -> str:
    """Confirm what stored webhooks report: this event and the others waiting with it,
    together (a burst queues one task per event; the first takes a batch, the rest find
    theirs done). Each event that Monnify has not settled is tried again on its own."""
    processed = inbox.process(
        runtime.db(),
        ObjectId(event_id),
        _process_batch,
        limit=BATCH_SIZE,
        window_seconds=runtime.settings().confirmation_retry_window_seconds,
        # Named by the task's id: delivered again after its process was killed mid-batch
        # (acks_late, reject on worker lost), it takes that batch back at once.
        batch=process_event.request.id,
    )
    for retried, delay in processed.retries.items():  # their retryAt is written by now
        process_event.apply_async((str(retried),), countdown=delay)
    return processed.status


def _process_batch(batch: list[dict[str, Any]]) -> dict[ObjectId, inbox.EventOutcome]:
    return webhook_events.process_batch(
        runtime.confirmer(), runtime.refunds(), batch, runtime.withdrawals()
    )


@periodic(REQUEUE_INBOX_TASK)
def requeue_inbox() -> int:
    """Enqueue events stored while the queue was unreachable, or whose task was lost."""
    db = runtime.db()
    after = runtime.settings().inbox_requeue_after_seconds
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
    current = runtime.settings()
    reconciler = runtime.reconciler()
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
    current = runtime.settings()
    report = reconcile_day(
        runtime.db(),
        runtime.monnify(),
        report_day,
        settle_seconds=current.invariants_settle_seconds,
        refund_review_after_seconds=current.refund_review_after_seconds,
    )
    return report_summary(report)
