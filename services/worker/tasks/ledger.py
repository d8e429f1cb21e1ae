"""Ledger housekeeping: expire holds past their time, check the invariants."""

from __future__ import annotations

from services.worker import context
from services.worker.periodic import periodic
from shared.ledger import check_invariants
from shared.metrics import INVARIANT_VIOLATIONS


@periodic("ledger.expire_holds")
def expire_holds() -> int:
    return context.ledger().expire_holds()


@periodic("ledger.check_invariants")
def check_ledger_invariants() -> list[dict]:
    """Report violations (already logged at error level); never repairs anything."""
    violations = check_invariants(context.db())
    INVARIANT_VIOLATIONS.set(len(violations))
    return [violation.as_dict() for violation in violations]
