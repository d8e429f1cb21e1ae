"""The beat schedule: periodic jobs. Exactly one beat process runs."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from shared.settings import Settings


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "expire-holds": {"task": "ledger.expire_holds", "schedule": 30.0},
        "check-invariants": {"task": "ledger.check_invariants", "schedule": 300.0},
        "seal-audit": {"task": "audit.seal", "schedule": settings.audit_seal_interval_seconds},
        "requeue-webhook-inbox": {"task": "payments.requeue_inbox", "schedule": 30.0},
        "reconcile-payments": {
            "task": "payments.reconcile_pending",
            "schedule": float(settings.reconcile_interval_seconds),
        },
        # Yesterday's report (UTC), once the day's late webhooks have had time to land.
        "daily-payments-report": {
            "task": "payments.daily_report",
            "schedule": crontab(hour=1, minute=15),
        },
        "sweep-calls": {
            "task": "calls.sweep",
            "schedule": float(settings.calls.sweep_interval_seconds),
        },
    }
