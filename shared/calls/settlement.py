"""Settling an ended call's cost from its hold exactly once: one ledger capture under
the key `call:<id>:capture`, which pays the receiver and the platform fee in the same
entry and releases the rest of the hold; a repeat replays it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId

from shared.calls.deps import CallContext
from shared.calls.model import ENDED, RATING_FIELDS, fee_percent_of, rated
from shared.calls.rating import split_cost
from shared.errors import NotFound
from shared.ledger import HoldNotOpen, SystemAccount, system_account_id, wallet_id
from shared.logs import get_logger

log = get_logger(__name__)


def settle_call(ctx: CallContext, call_id: str) -> None:
    """Settle the call `call_id` names, if it exists (the settle task's step)."""
    if ObjectId.is_valid(call_id):
        call = ctx.db.calls.find_one({"_id": ObjectId(call_id)})
        if call is not None:
            settle(ctx, call, ctx.clock())


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
