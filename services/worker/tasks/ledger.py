"""Ledger housekeeping: expire holds past their time, check the invariants."""

from __future__ import annotations

from services.worker.periodic import periodic
from services.worker.runtime import runtime
from shared.ledger import check_recent
from shared.ledger.jobs import CHECK_INVARIANTS_TASK, EXPIRE_HOLDS_TASK
from shared.metrics import INVARIANT_VIOLATIONS


@periodic(EXPIRE_HOLDS_TASK)
def expire_holds() -> int:
    return runtime.ledger().expire_holds()


@periodic(CHECK_INVARIANTS_TASK)
def check_ledger_invariants() -> list[dict]:
    """Check the entries since the last run and the accounts they touched; report
    violations (already logged at error level), never repair anything. The full check
    is `python -m services.manage check-invariants --full`."""
    check = check_recent(runtime.db(), settle_seconds=runtime.settings().invariants_settle_seconds)
    INVARIANT_VIOLATIONS.set(len(check.violations))
    return [violation.as_dict() for violation in check.violations]
