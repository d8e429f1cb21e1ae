"""The worker's side of a call: renew the reservation block by block, cut the call off
when the money runs out, settle ended calls, and sweep up calls nobody looked after.

Every step tolerates running twice or late (the broker redelivers): it re-reads the call
and its hold, and does only what is still to be done.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from shared import live_events
from shared.calls.deps import CallContext
from shared.calls.ending import close_call, settle
from shared.calls.model import (
    CUT_OFF_TASK,
    ENDED,
    MAX_DURATION,
    OPEN,
    RENEWAL_MISSING,
    Followup,
    tariff_of,
)
from shared.calls.reservations import (
    extend,
    follow,
    record_reservation,
    reserved_seconds,
    spendable,
)
from shared.logs import get_logger

log = get_logger(__name__)

SWEEP_BATCH = 200


def _open_call(ctx: CallContext, call_id: str) -> dict[str, Any] | None:
    if not ObjectId.is_valid(call_id):
        return None
    return ctx.db.calls.find_one({"_id": ObjectId(call_id), "status": OPEN})


def renew(ctx: CallContext, call_id: str, reserved: int) -> list[Followup]:
    """Reserve the block after the first `reserved` seconds, then schedule what follows:
    the next renewal, or the cut-off when this was the last block the wallet pays for."""
    call = _open_call(ctx, call_id)
    if call is None or call.get("finalReason"):
        return []  # ended, or already on its last block: nothing to renew
    held_for = reserved_seconds(ctx, call)
    if held_for is None:
        return []  # settled meanwhile
    if held_for == reserved:
        extend(ctx, call, reserved)
        held_for = reserved_seconds(ctx, call)
        if held_for is None:
            return []
    if held_for < reserved:
        log.warning("call_renewal_out_of_order", call_id=call_id, reserved=reserved)
        return []
    updated = record_reservation(ctx, call, reserved, held_for)
    if updated is None:
        return []
    if held_for > reserved:
        live_events.publish_call(ctx.redis, updated, live_events.CALL_EXTENDED)
    budget = tariff_of(call).cost(held_for) + spendable(ctx, call["account"])
    return [follow(ctx, updated, budget)]


def cut_off(ctx: CallContext, call_id: str) -> list[Followup]:
    """End a call on its last block once its reservation has run out, and settle it."""
    call = _open_call(ctx, call_id)
    if call is None or not call.get("finalReason"):
        return []  # ended already, or not on its last block (a stale message)
    now = ctx.clock()
    if now < call["paidUntil"]:
        return [Followup(CUT_OFF_TASK, call["paidUntil"], {"call_id": call_id})]
    settle(ctx, close_call(ctx, call, call["finalReason"], now), now)
    return []


def settle_call(ctx: CallContext, call_id: str) -> None:
    if ObjectId.is_valid(call_id):
        call = ctx.db.calls.find_one({"_id": ObjectId(call_id)})
        if call is not None:
            settle(ctx, call, ctx.clock())


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
