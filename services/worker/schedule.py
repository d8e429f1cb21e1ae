"""The beat schedule: periodic jobs. Exactly one beat process runs."""

from __future__ import annotations

from typing import Any

from shared.settings import Settings


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "expire-holds": {"task": "ledger.expire_holds", "schedule": 30.0},
        "check-invariants": {"task": "ledger.check_invariants", "schedule": 300.0},
        "sweep-calls": {
            "task": "calls.sweep",
            "schedule": float(settings.calls.sweep_interval_seconds),
        },
    }
