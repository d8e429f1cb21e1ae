"""The sweeper (a beat job): ends the open calls nobody looked after and settles the
ended calls whose settlement went missing, so a lost task or a dead broker never leaves
a call running unpaid or its money held."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from shared.calls.deps import CallContext
from shared.calls.ending import close_call
from shared.calls.model import ENDED, MAX_DURATION, OPEN, RENEWAL_MISSING
from shared.calls.settlement import settle
from shared.logs import get_logger

log = get_logger(__name__)

SWEEP_BATCH = 200


def sweep(ctx: CallContext) -> int:
    """End open calls past the maximum duration or whose renewal never came (billing at
    most what was held), and settle ended calls whose settlement went missing. Returns
    how many calls this run ended or settled."""
    now = ctx.clock()
    grace = timedelta(seconds=ctx.config.sweep_grace_seconds)
    too_long = now - timedelta(seconds=ctx.config.max_duration_seconds)
    overdue = {
        call["_id"]: call
        for selector in (
            {"status": OPEN, "paidUntil": {"$lte": now - grace}},
            {"status": OPEN, "startedAt": {"$lte": too_long}},
        )
        for call in _find(ctx, selector)
    }
    handled = 0
    for call in overdue.values():
        reason = _sweep_reason(call, too_long)
        log.warning("call_swept", call_id=str(call["_id"]), reason=reason)
        handled += _isolated(
            call, lambda c=call, r=reason: settle(ctx, close_call(ctx, c, r, now), now)
        )
    unsettled = _find(ctx, {"status": ENDED, "settled": False, "endedAt": {"$lte": now - grace}})
    for call in unsettled:
        handled += _isolated(call, lambda c=call: settle(ctx, c, now))
    return handled


def _isolated(call: dict[str, Any], step: Callable[[], None]) -> int:
    """Run one call's step; a call that fails is logged and left for the next sweep
    instead of stopping the calls behind it. Returns 1 if it succeeded."""
    try:
        step()
    except Exception:
        log.exception("call_sweep_failed", call_id=str(call["_id"]))
        return 0
    return 1


def _find(ctx: CallContext, selector: dict[str, Any]) -> list[dict[str, Any]]:
    """One bounded batch; each selector is served by its own index (shared/indexes.py)."""
    return list(ctx.db.calls.find(selector).limit(SWEEP_BATCH))


def _sweep_reason(call: dict[str, Any], too_long: datetime) -> str:
    if call["startedAt"] <= too_long:
        return MAX_DURATION
    return RENEWAL_MISSING
