"""Renewals: reserve a call's money block by block while it runs, and cut the call off
when the money runs out (the worker's steps; settlement.py captures, sweeper.py catches
what they miss).

Every step tolerates running twice or late (the broker redelivers): it re-reads the call
and its hold, and does only what is still to be done.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from shared import live_events
from shared.calls.deps import CallContext
from shared.calls.ending import close_call
from shared.calls.model import CUT_OFF_TASK, OPEN, Followup, tariff_of
from shared.calls.reservations import (
    extend,
    follow,
    record_reservation,
    reserved_seconds,
    spendable,
)
from shared.calls.settlement import settle
from shared.logs import get_logger

log = get_logger(__name__)


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
