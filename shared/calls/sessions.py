"""The gateway's side of a call: initiate (with the first hold, synchronously), end,
and reads for its participants."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from shared import live_events
from shared.calls.context import CallContext
from shared.calls.ending import close_call
from shared.calls.model import (
    FAILED_TO_START,
    OPEN,
    SETTLE_TASK,
    STARTING,
    Followup,
    call_view,
    end_view,
    hold_id_of,
    role_of,
)
from shared.calls.rates import rate_of
from shared.calls.rating import Tariff
from shared.calls.reservations import (
    duration_cap,
    hold_expiry,
    next_step,
    record_reservation,
    reservation_target,
    wallet_state,
)
from shared.errors import Conflict, Forbidden, InvalidRequest, NotFound, PaymentRequired
from shared.indexes import CALLS_BY_CALLER, CALLS_BY_RECEIVER
from shared.ledger import HoldNotOpen, InsufficientFunds
from shared.ledger.accounts import open_wallet
from shared.money import to_major
from shared.pagination import NEWEST_FIRST, next_cursor, older_than
from shared.users import find_active_user

INSUFFICIENT_BALANCE = "Insufficient wallet balance to initiate call"
_LOCK_PREFIX = "lock:calls:caller:"


@dataclass(frozen=True)
class Initiated:
    call: dict[str, Any]
    max_duration_seconds: int
    followups: list[Followup]

    def view(self) -> dict[str, Any]:
        return {
            "callId": str(self.call["_id"]),
            "status": self.call["status"],
            "message": "Call initiated successfully",
            "ratePerMinute": self.call["ratePerMinute"],
            "maxDurationSeconds": self.max_duration_seconds,
        }


def initiate(
    ctx: CallContext, caller_id: ObjectId, receiver_id: ObjectId, max_rate: int | None
) -> Initiated:
    """Start a call at the receiver's price, reserving its first block from the caller's
    wallet. `max_rate` is the most the caller agreed to pay per minute, if they said."""
    if receiver_id == caller_id:
        raise InvalidRequest("You cannot call yourself", {"receiverId": ["is your own id"]})
    receiver = find_active_user(ctx.db, str(receiver_id))
    if receiver is None:
        raise NotFound("No such user to call", {"receiverId": str(receiver_id)})
    rate = rate_of(receiver, ctx.config)
    if max_rate is not None and rate > max_rate:
        raise Conflict(
            "The receiver's rate is higher than the costPerMinute you accept",
            {"ratePerMinute": to_major(rate)},
        )
    tariff = Tariff(rate, ctx.config.connect_fee, ctx.config.billing_increment_seconds)
    account = open_wallet(ctx.db, caller_id, ctx.currency)
    with _caller_lock(ctx, caller_id):
        slot = _free_slot(ctx, caller_id)
        budget = _initial_budget(ctx, account, tariff)
        first = reservation_target(ctx.config, tariff, 0, budget)
        call = _record_call(ctx, caller_id, receiver_id, account, tariff, slot)
        _place_first_hold(ctx, call, tariff, first)
    started = _activate(ctx, call, first)
    live_events.publish_call(ctx.redis, started, live_events.CALL_INITIATED)
    max_duration = min(tariff.seconds_covered(budget), duration_cap(ctx.config))
    return Initiated(started, max_duration, [next_step(ctx.config, started)])


@contextmanager
def _caller_lock(ctx: CallContext, caller_id: ObjectId) -> Iterator[None]:
    """Serialises one caller's initiates so they see each other's slots and holds. Only
    an optimisation: the slot index and the ledger's conditional writes are the guarantee."""
    lock = ctx.redis.lock(
        f"{_LOCK_PREFIX}{caller_id}", timeout=ctx.lock_timeout, blocking_timeout=ctx.lock_wait
    )
    if not lock.acquire():
        raise Conflict("Another call of yours is being initiated; retry shortly")
    try:
        yield
    finally:
        if lock.owned():
            lock.release()


def _free_slot(ctx: CallContext, caller_id: ObjectId) -> int:
    limit = ctx.config.max_concurrent
    taken = {
        c["slot"] for c in ctx.db.calls.find({"callerId": caller_id, "open": True}, {"slot": 1})
    }
    free = [slot for slot in range(limit) if slot not in taken]
    if not free:
        raise _too_many_calls(limit)
    return free[0]


def _too_many_calls(limit: int) -> Conflict:
    return Conflict(
        f"You already have {limit} open call(s); end one before starting another",
        {"maxConcurrent": limit},
    )


def _initial_budget(ctx: CallContext, account: str, tariff: Tariff) -> int:
    """The caller's spendable balance, refused unless it pays the connect fee and one
    billing increment."""
    budget, restricted = wallet_state(ctx, account)
    if restricted:
        raise PaymentRequired("The wallet is restricted and cannot pay for calls")
    if tariff.seconds_covered(budget) == 0:
        required = tariff.cost(tariff.increment_seconds)
        raise PaymentRequired(
            INSUFFICIENT_BALANCE, {"required": to_major(required), "available": to_major(budget)}
        )
    return budget


def _record_call(
    ctx: CallContext,
    caller_id: ObjectId,
    receiver_id: ObjectId,
    account: str,
    tariff: Tariff,
    slot: int,
) -> dict[str, Any]:
    """Insert the starting call in the caller's free slot. Billing runs from now."""
    now = ctx.clock()
    call_id = ObjectId()
    call = {
        "_id": call_id,
        "callerId": caller_id,
        "receiverId": receiver_id,
        "currency": ctx.currency,
        "account": account,
        "holdId": hold_id_of(call_id),
        "ratePerMinute": tariff.rate_per_minute,
        "connectFee": tariff.connect_fee,
        "incrementSeconds": tariff.increment_seconds,
        "status": STARTING,
        "open": True,
        "slot": slot,
        "reservedSeconds": 0,
        "settled": False,
        "startedAt": now,
        "createdAt": now,
    }
    try:
        ctx.db.calls.insert_one(call)
    except DuplicateKeyError:
        raise _too_many_calls(ctx.config.max_concurrent) from None  # lost a race for the slot
    return call


def _place_first_hold(ctx: CallContext, call: dict[str, Any], tariff: Tariff, first: int) -> None:
    try:
        ctx.ledger.hold(
            f"call:{call['_id']}:hold",
            call["account"],
            tariff.cost(first),
            hold_expiry(ctx.config, call, first),
            hold_id=call["holdId"],
            reference=f"call:{call['_id']}",
        )
    except (InsufficientFunds, Conflict) as refused:
        # Refused before anything was held (no funds, a busy wallet): no call happened.
        ctx.db.calls.delete_one({"_id": call["_id"], "status": STARTING})
        if isinstance(refused, InsufficientFunds):
            raise PaymentRequired(INSUFFICIENT_BALANCE) from None
        raise
    except BaseException:
        # The hold may or may not exist: end the call unbilled; settling releases it.
        close_call(ctx, call, FAILED_TO_START, ctx.clock())
        raise


def _activate(ctx: CallContext, call: dict[str, Any], first: int) -> dict[str, Any]:
    """Open the call with its first block reserved. Only the sweeper, finding it stuck in
    `starting` past its grace, can have ended it meanwhile: then give the money back."""
    started = record_reservation(ctx, call, 0, first, status=STARTING)
    if started is None:
        with suppress(HoldNotOpen):  # the sweeper's settlement released it already
            ctx.ledger.release(
                f"call:{call['_id']}:abandon", call["holdId"], account=call["account"]
            )
        raise Conflict("The call could not be started in time; nothing was charged")
    return started


def end(ctx: CallContext, call_id: ObjectId, user_id: ObjectId) -> tuple[dict, list[Followup]]:
    """End the call now (caller or receiver only). Every end of one call answers the same;
    the capture follows in the settle task."""
    call = ctx.db.calls.find_one({"_id": call_id})
    if call is None:
        raise NotFound("No such call", {"callId": str(call_id)})
    role = role_of(call, user_id)
    if role is None:
        raise Forbidden("Only the caller or the receiver can end this call")
    if call["status"] == STARTING:
        raise Conflict("The call is still being set up; end it once it has started")
    now = ctx.clock()
    if call["status"] == OPEN:
        call = close_call(ctx, call, f"{role}_hangup", now)
    followups = [] if call.get("settled") else [_settle_now(call, now)]
    return end_view(call), followups


def _settle_now(call: dict[str, Any], now: datetime) -> Followup:
    return Followup(SETTLE_TASK, now, {"call_id": str(call["_id"])})


def get_call(ctx: CallContext, call_id: ObjectId, user_id: ObjectId) -> dict[str, Any]:
    """A call for its participants; anyone else learns nothing, not even that it exists."""
    call = ctx.db.calls.find_one({"_id": call_id})
    if call is None or role_of(call, user_id) is None:
        raise NotFound("No such call", {"callId": str(call_id)})
    return call_view(call, user_id)


_ROLE_QUERIES = {
    "caller": ("callerId", CALLS_BY_CALLER),
    "receiver": ("receiverId", CALLS_BY_RECEIVER),
}


def history(
    ctx: CallContext, user_id: ObjectId, role: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """The user's calls newest first, in one role or both; and the next page's cursor."""
    roles = [role] if role else list(_ROLE_QUERIES)
    pages = [_role_page(ctx, user_id, r, limit, cursor) for r in roles]
    newest = heapq.merge(*pages, key=lambda c: (c["createdAt"], c["_id"]), reverse=True)
    page = list(newest)[:limit]
    return [call_view(call, user_id) for call in page], next_cursor(page, limit)


def _role_page(
    ctx: CallContext, user_id: ObjectId, role: str, limit: int, cursor: str | None
) -> list[dict[str, Any]]:
    field, index = _ROLE_QUERIES[role]
    selector = {field: user_id, **older_than(cursor)}
    return list(ctx.db.calls.find(selector).sort(NEWEST_FIRST).hint(index).limit(limit))
