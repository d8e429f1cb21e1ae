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

CALLS = "calls"
PAYMENTS = "payments"
HOUSEKEEPING = "housekeeping"
QUEUES = (CALLS, PAYMENTS, HOUSEKEEPING)

TASK_QUEUES: dict[str, str] = {
    "calls.renew": CALLS,
    "calls.cut_off": CALLS,
    "calls.settle": CALLS,
    # Periodic, but it ends calls whose renewal was lost and settles them: behind a slow
    # reconciliation run, unpaid talk would go on. Its batches are bounded (SWEEP_BATCH).
    "calls.sweep": CALLS,
    "payments.process_event": PAYMENTS,
    # A user waits for it, like a webhook's credit; its retries look the transfer up.
    "payouts.send": PAYMENTS,
    "payouts.poll": HOUSEKEEPING,
    "payments.requeue_inbox": HOUSEKEEPING,
    "payments.reconcile_pending": HOUSEKEEPING,
    "payments.daily_report": HOUSEKEEPING,
    "ledger.expire_holds": HOUSEKEEPING,
    "ledger.check_invariants": HOUSEKEEPING,
    "audit.seal": HOUSEKEEPING,
}


def configure_queues(app: Celery) -> None:
    """Declare the queues and route every task by name. A task missing from the table
    goes to housekeeping, the one queue whose delay costs no money."""
    app.conf.task_queues = [Queue(name, Exchange(name), routing_key=name) for name in QUEUES]
    app.conf.task_default_queue = HOUSEKEEPING
    app.conf.task_routes = {name: {"queue": queue} for name, queue in TASK_QUEUES.items()}
