"""The beat schedule: periodic jobs. Exactly one beat process runs.

Each entry expires after its own interval: a run still waiting in a backed-up queue when
the next is sent is dropped instead of stacking up behind it. Every job also runs under
a lock of its own (services/worker/periodic.py), so a slow run is never overlapped.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from shared.audit import SEAL_TASK
from shared.calls.model import SWEEP_TASK
from shared.funding.jobs import DAILY_REPORT_TASK, RECONCILE_TASK, REQUEUE_INBOX_TASK
from shared.ledger.jobs import CHECK_INVARIANTS_TASK, EXPIRE_HOLDS_TASK
from shared.payouts.jobs import POLL_WITHDRAWALS_TASK
from shared.settings import Settings

DAY_SECONDS = 86400.0


def _every(task: str, seconds: float, schedule: Any = None) -> dict[str, Any]:
    return {"task": task, "schedule": schedule or seconds, "options": {"expires": seconds}}


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "expire-holds": _every(EXPIRE_HOLDS_TASK, 30.0),
        "check-invariants": _every(CHECK_INVARIANTS_TASK, 300.0),
        "seal-audit": _every(SEAL_TASK, float(settings.audit_seal_interval_seconds)),
        "requeue-webhook-inbox": _every(REQUEUE_INBOX_TASK, 30.0),
        "reconcile-payments": _every(RECONCILE_TASK, float(settings.reconcile_interval_seconds)),
        # Yesterday's report (UTC), once the day's late webhooks have had time to land.
        "daily-payments-report": _every(DAILY_REPORT_TASK, DAY_SECONDS, crontab(hour=1, minute=15)),
        "poll-withdrawals": _every(
            POLL_WITHDRAWALS_TASK, float(settings.payouts.poll_interval_seconds)
        ),
        "sweep-calls": _every(SWEEP_TASK, float(settings.calls.sweep_interval_seconds)),
    }
