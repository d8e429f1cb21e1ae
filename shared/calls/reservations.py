"""Reserving a call's money in blocks (prepaid charging's debit interval).

The call's hold is the truth of what is reserved: it always holds exactly
`tariff.cost(T)` for the T seconds reserved, so T is read back from the hold's amount
(`seconds_covered`) and a task run twice, or late, finds the work already done.

Each block reserves up to CALL_HOLD_BLOCK_SECONDS more. When the wallet can't pay a
whole block, the call gets what the money buys in whole increments, and its renewals
go on: money credited meanwhile buys more. The renewal that can buy nothing when no
other can come before the reservation runs out gives the call a final reason: it is
cut off at the second the reservation runs out.

A call whose wallet can't pay its next whole block is about to run out: once less than
CALL_LOW_FUNDS_WARNING_SECONDS are left, both participants get a `low_funds` event, once
per call; until then its renewal comes that early, to warn them in time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared import live_events
from shared.calls.config import CallConfig
from shared.calls.deps import CallContext
from shared.calls.model import (
    CUT_OFF_TASK,
    INSUFFICIENT_FUNDS,
    MAX_DURATION,
    OPEN,
    RENEW_TASK,
    Followup,
    tariff_of,
)
from shared.calls.rating import Tariff
from shared.ledger import HoldNotOpen, IdempotencyConflict, InsufficientFunds
from shared.logs import get_logger
from shared.queries import update_and_read

log = get_logger(__name__)

EXTEND_ATTEMPTS = 3


def wallet_state(ctx: CallContext, account: str) -> tuple[int, bool]:
    """The wallet's available balance, and whether it is restricted."""
    wallet = ctx.ledger.reads.wallet(account)
    return max(wallet.available, 0), wallet.restricted


def spendable(ctx: CallContext, account: str) -> int:
    """What the wallet can still reserve: its available balance, none if restricted."""
    available, restricted = wallet_state(ctx, account)
    return 0 if restricted else available


def duration_cap(config: CallConfig) -> int:
    """CALL_MAX_DURATION_SECONDS in whole billing increments."""
    increment = config.billing_increment_seconds
    return config.max_duration_seconds // increment * increment


def whole_block(config: CallConfig, reserved: int) -> int:
    """Seconds reserved in total after one more whole block, within the maximum duration."""
    return min(reserved + config.hold_block_seconds, duration_cap(config))


def reservation_target(config: CallConfig, tariff: Tariff, reserved: int, budget: int) -> int:
    """Seconds reserved in total after the next block: one more block, or less when the
    budget (what is held plus what is spendable) or the maximum duration says so."""
    return max(min(whole_block(config, reserved), tariff.seconds_covered(budget)), reserved)


def final_reason(config: CallConfig, before: int, after: int, last_chance: bool) -> str | None:
    """Why no block follows the one that took the reservation from `before` to `after`
    seconds: the duration cap, or a wallet that paid for nothing more at the last
    renewal before the reservation runs out (`last_chance`)."""
    if after >= duration_cap(config):
        return MAX_DURATION
    if after == before and last_chance:
        return INSUFFICIENT_FUNDS
    return None


def short_of_next_block(config: CallConfig, tariff: Tariff, reserved: int, budget: int) -> bool:
    """Whether `budget` (what is held plus what is spendable) can't pay for the next whole
    block after `reserved` seconds; never at the duration cap, where no block follows."""
    block_end = whole_block(config, reserved)
    return reserved < block_end and tariff.seconds_covered(budget) < block_end


def hold_expiry(config: CallConfig, call: dict[str, Any], reserved: int) -> datetime:
    """Far enough past the reservation's end that ledger.expire_holds never releases a
    live call's hold: the sweeper ends the call long before."""
    return call["startedAt"] + timedelta(seconds=reserved + config.hold_expiry_grace_seconds)


def reserved_seconds(ctx: CallContext, call: dict[str, Any]) -> int | None:
    """Seconds the call's open hold pays for; None once the hold is closed (or absent)."""
    hold = ctx.ledger.reads.hold(call["holdId"])
    if hold is None or hold["status"] != "open":
        return None
    return tariff_of(call).seconds_covered(int(hold["amount"]))


def reservation_fields(
    config: CallConfig, call: dict[str, Any], before: int, after: int, last_chance: bool
) -> dict[str, Any]:
    """The call's record of a reservation taken from `before` to `after` seconds."""
    fields: dict[str, Any] = {
        "reservedSeconds": after,
        "paidUntil": call["startedAt"] + timedelta(seconds=after),
    }
    reason = final_reason(config, before, after, last_chance)
    if reason:
        fields["finalReason"] = reason
    return fields


def record_reservation(
    ctx: CallContext, call: dict[str, Any], before: int, after: int
) -> dict[str, Any] | None:
    """Write the reservation onto the open call; None if it ended meanwhile. A renewal
    at or past the usual renewal time is the last chance to buy more before the
    reservation runs out."""
    renew_at = call["paidUntil"] - timedelta(seconds=ctx.config.renew_lead_seconds)
    fields = reservation_fields(ctx.config, call, before, after, ctx.clock() >= renew_at)
    return update_and_read(
        ctx.db.calls,
        {"_id": call["_id"], "status": OPEN, "reservedSeconds": {"$lte": after}},
        {"$set": fields},
    )


def follow(ctx: CallContext, call: dict[str, Any], budget: int) -> Followup:
    """What comes after a reservation was recorded on the open call, warning its
    participants first if its money runs out soon. `budget`: what is held for it plus
    what its wallet can still spend."""
    low = short_of_next_block(ctx.config, tariff_of(call), call["reservedSeconds"], budget)
    warned = "lowFundsWarnedAt" in call
    if low and not warned and _seconds_left(ctx, call) <= ctx.config.low_funds_warning_seconds:
        warn_low_funds(ctx, call)
        warned = True
    return next_step(ctx.config, call, warn_early=low and not warned)


def _seconds_left(ctx: CallContext, call: dict[str, Any]) -> int:
    return max(int((call["paidUntil"] - ctx.clock()).total_seconds()), 0)


def warn_low_funds(ctx: CallContext, call: dict[str, Any]) -> None:
    """Tell both participants how many seconds the money lasts; once per call however
    many renewals race (the first to mark the call publishes)."""
    marked = ctx.db.calls.update_one(
        {"_id": call["_id"], "status": OPEN, "lowFundsWarnedAt": {"$exists": False}},
        {"$set": {"lowFundsWarnedAt": ctx.clock()}},
    )
    if marked.modified_count:
        seconds_left = _seconds_left(ctx, call)
        log.info("call_low_funds", call_id=str(call["_id"]), seconds_left=seconds_left)
        live_events.publish_call(
            ctx.redis, call, live_events.CALL_LOW_FUNDS, secondsLeft=seconds_left
        )


def next_step(config: CallConfig, call: dict[str, Any], *, warn_early: bool = False) -> Followup:
    """The cut-off at the reservation's end for a call on its last block, otherwise the
    renewal shortly before it; with `warn_early`, when CALL_LOW_FUNDS_WARNING_SECONDS
    are left (if that is earlier), to warn the participants."""
    call_id = str(call["_id"])
    if call.get("finalReason"):
        return Followup(CUT_OFF_TASK, call["paidUntil"], {"call_id": call_id})
    lead = config.renew_lead_seconds
    if warn_early:
        lead = max(lead, config.low_funds_warning_seconds)
    renew_at = call["paidUntil"] - timedelta(seconds=lead)
    return Followup(
        RENEW_TASK, renew_at, {"call_id": call_id, "reserved_seconds": call["reservedSeconds"]}
    )


def extend(ctx: CallContext, call: dict[str, Any], reserved: int) -> None:
    """Reserve the next block on the call's hold, planning again if the wallet changed
    under us. A hold extended by a concurrent run of this step, or closed, is left be."""
    tariff = tariff_of(call)
    held = tariff.cost(reserved)
    key = f"call:{call['_id']}:extend:{reserved}"
    for _ in range(EXTEND_ATTEMPTS):
        budget = held + spendable(ctx, call["account"])
        target = reservation_target(ctx.config, tariff, reserved, budget)
        if target == reserved:
            return
        expires = hold_expiry(ctx.config, call, target)
        try:
            ctx.ledger.extend_hold(
                key,
                call["holdId"],
                tariff.cost(target) - held,
                expires,
                account=call["account"],
            )
            return
        except InsufficientFunds:
            continue  # spent elsewhere since we looked: plan with what is left
        except (IdempotencyConflict, HoldNotOpen):
            return
