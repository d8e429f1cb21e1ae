"""Ending a call exactly once: one conditional update on `status`. However many ends,
cut-offs and sweeps race, one wins and the others read its result. A participant
hanging up before the call's paidUntil (the common end) is that one update and nothing
else. The ended call's cost is captured afterwards (settlement.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId

from shared import live_events
from shared.calls.deps import CallContext
from shared.calls.model import ENDED, INSUFFICIENT_FUNDS, OPEN, rated, rating
from shared.calls.reservations import reserved_seconds
from shared.logs import get_logger
from shared.metrics import CALLS_CUT_OFF
from shared.queries import update_and_read

log = get_logger(__name__)


def _rated_end(
    ctx: CallContext, call: dict[str, Any], reason: str, now: datetime
) -> dict[str, Any]:
    """The end of a call ending now, rated on what is held."""
    return {"status": ENDED, **rating(call, _reserved_at_end(ctx, call, now), reason, now)}


def _reserved_at_end(ctx: CallContext, call: dict[str, Any], now: datetime) -> int:
    """Seconds held for a call ending now. Before its paidUntil the call's own record
    says it: an open call's hold holds at least that and can't have expired yet (it
    lives CALL_HOLD_EXPIRY_GRACE_SECONDS longer). Later, a renewal may have extended the
    hold without recording it yet, or the hold may be gone: the hold says."""
    if now < call["paidUntil"]:
        return int(call["reservedSeconds"])
    return reserved_seconds(ctx, call) or 0


def hang_up(
    ctx: CallContext, call_id: ObjectId, user_id: ObjectId, now: datetime
) -> dict[str, Any] | None:
    """End an open call for a participant hanging up before its paidUntil, in one write
    (see `update_and_read`): only who and when are stored, the rest follows from the
    call (`rated`).
    None when the call is no such call (ended, past paidUntil, not theirs, unknown)."""
    hang_up_now = {"$set": {"status": ENDED, "endedAt": now, "endedBy": user_id}}
    # Tried as the caller, then as the receiver: an $or of the two would make the
    # embedded server walk every call.
    for participant in ("callerId", "receiverId"):
        open_call = {"_id": call_id, "status": OPEN, "paidUntil": {"$gt": now}}
        ended = update_and_read(
            ctx.db.calls,
            {**open_call, participant: user_id},
            {**hang_up_now, "$unset": {"open": ""}},
        )
        if ended is not None:
            return _ended(ctx, rated(ended))
    return None


def close_call(
    ctx: CallContext, call: dict[str, Any], reason: str, now: datetime
) -> dict[str, Any]:
    """End the call if it has not ended; returns the ended call, whoever ended it."""
    ended = update_and_read(
        ctx.db.calls,
        {"_id": call["_id"], "status": OPEN},
        {"$set": _rated_end(ctx, call, reason, now), "$unset": {"open": ""}},
    )
    if ended is not None:
        return _ended(ctx, ended)
    return rated(ctx.db.calls.find_one({"_id": call["_id"]}))


def _ended(ctx: CallContext, ended: dict[str, Any]) -> dict[str, Any]:
    log.info("call_ended", call_id=str(ended["_id"]), reason=ended["endReason"])
    _announce_end(ctx, ended)
    return ended


def _announce_end(ctx: CallContext, ended: dict[str, Any]) -> None:
    cut_off = ended["endReason"] == INSUFFICIENT_FUNDS
    if cut_off:
        CALLS_CUT_OFF.inc()
    state = live_events.CALL_CUT_OFF if cut_off else live_events.CALL_ENDED
    live_events.publish_call(ctx.redis, ended, state)
