"""Celery queues by urgency, and which task goes to which, by task name.

Both Celery apps configure themselves from here: the worker's (services/worker) and the
gateway's client (services/api/queue.py), which enqueues by name and never imports the
worker. Each queue has its own worker processes, so a burst on one never delays another:

- `calls`: a call's next step is due at a given second (renew the hold before it runs
  out, cut the call off when the money does, settle it once ended);
- `payments`: webhook confirmations, which arrive in bursts, and payouts' transfers;
- `housekeeping`: periodic jobs, which may take long and are never urgent.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from shared.audit import SEAL_TASK
from shared.calls.model import CUT_OFF_TASK, RENEW_TASK, SETTLE_TASK, SWEEP_TASK
from shared.funding.jobs import (
    DAILY_REPORT_TASK,
    PROCESS_EVENT_TASK,
    RECONCILE_TASK,
    REQUEUE_INBOX_TASK,
)
from shared.ledger.jobs import CHECK_INVARIANTS_TASK, EXPIRE_HOLDS_TASK
from shared.payouts.jobs import POLL_WITHDRAWALS_TASK, SEND_WITHDRAWAL_TASK

CALLS = "calls"
PAYMENTS = "payments"
HOUSEKEEPING = "housekeeping"
QUEUES = (CALLS, PAYMENTS, HOUSEKEEPING)

TASK_QUEUES: dict[str, str] = {
    RENEW_TASK: CALLS,
    CUT_OFF_TASK: CALLS,
    SETTLE_TASK: CALLS,
    # Periodic, but it ends calls whose renewal was lost and settles them: behind a slow
    # reconciliation run, unpaid talk would go on. Its batches are bounded (SWEEP_BATCH).
    SWEEP_TASK: CALLS,
    PROCESS_EVENT_TASK: PAYMENTS,
    # A user waits for it, like a webhook's credit; its retries look the transfer up.
    SEND_WITHDRAWAL_TASK: PAYMENTS,
    POLL_WITHDRAWALS_TASK: HOUSEKEEPING,
    REQUEUE_INBOX_TASK: HOUSEKEEPING,
    RECONCILE_TASK: HOUSEKEEPING,
    DAILY_REPORT_TASK: HOUSEKEEPING,
    EXPIRE_HOLDS_TASK: HOUSEKEEPING,
    CHECK_INVARIANTS_TASK: HOUSEKEEPING,
    SEAL_TASK: HOUSEKEEPING,
}


def configure_queues(app: Celery) -> None:
    """Declare the queues and route every task by name. A task missing from the table
    goes to housekeeping, the one queue whose delay costs no money."""
    app.conf.task_queues = [Queue(name, Exchange(name), routing_key=name) for name in QUEUES]
    app.conf.task_default_queue = HOUSEKEEPING
    app.conf.task_routes = {name: {"queue": queue} for name, queue in TASK_QUEUES.items()}
