"""Ending a call exactly once, and settling its cost from the hold exactly once.

Ending is one conditional update on `status`: however many ends, cut-offs and sweeps
race, one wins and the others read its result. A participant hanging up before the
call's paidUntil (the common end) is that one update and nothing else. Settling is one
ledger capture under the key `call:<id>:capture`, which pays the receiver and the
platform fee in the same entry and releases the rest of the hold; a repeat replays it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId

from shared import live_events
from shared.calls.deps import CallContext
from shared.calls.model import (
    ENDED,
    INSUFFICIENT_FUNDS,
    OPEN,
    RATING_FIELDS,
    fee_percent_of,
    rated,
    rating,
)
from shared.calls.rating import split_cost
from shared.calls.reservations import reserved_seconds
from shared.errors import NotFound
from shared.ledger import HoldNotOpen, SystemAccount, system_account_id, wallet_id
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


def settle(ctx: CallContext, call: dict[str, Any], now: datetime) -> None:
    """Capture an ended call's cost from its hold, split between the receiver and the
    platform, and release the rest; then store the rating with `settled`. Safe to run
    any number of times."""
    if call["status"] != ENDED or call.get("settled"):
        return
    call = rated(call)
    entry_id = _capture(ctx, call)
    ctx.db.calls.update_one(
        {"_id": call["_id"], "settled": False},
        {
            "$set": {
                **{field: call[field] for field in RATING_FIELDS},
                "settled": True,
                "settledAt": now,
                "entryId": entry_id,
            }
        },
    )


def _capture(ctx: CallContext, call: dict[str, Any]) -> str | None:
    currency = call["currency"]
    fee_percent = fee_percent_of(call, ctx.config.platform_fee_percent)
    earned, fee = split_cost(int(call["cost"]), fee_percent)
    shares = [
        (wallet_id(call["receiverId"], currency), earned),
        (system_account_id(SystemAccount.PLATFORM_REVENUE, currency), fee),
    ]
    try:
        result = ctx.ledger.capture(
            f"call:{call['_id']}:capture",
            call["holdId"],
            int(call["cost"]),
            [(account, amount) for account, amount in shares if amount],
            account=call["account"],
            reference=f"call:{call['_id']}",
            description=f"Call {call['_id']}",
        )
    except (NotFound, HoldNotOpen):
        # Gone or released behind the call's back: a call is recorded only once its hold
        # is placed, and expiry comes long after settlement, so this should not happen.
        # The money is with the caller and nothing can be captured. Loud, not retried.
        log.error("call_hold_closed_before_settlement", call_id=str(call["_id"]))
        return None
    return result.entry_id
