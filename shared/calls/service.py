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
from shared.calls.deps import CallContext
from shared.calls.ending import close_call, hang_up
from shared.calls.model import (
    OPEN,
    SETTLE_TASK,
    Followup,
    call_view,
    end_view,
    fee_basis_points,
    hold_id_of,
    rated,
    role_of,
)
from shared.calls.rates import rate_of
from shared.calls.rating import Tariff
from shared.calls.reservations import (
    duration_cap,
    follow,
    hold_expiry,
    reservation_fields,
    reservation_target,
    wallet_state,
    whole_block,
)
from shared.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    Forbidden,
    InvalidRequest,
    NotFound,
    PaymentRequired,
)
from shared.ledger import HoldNotOpen, HoldResult, InsufficientFunds, wallet_id
from shared.money import to_major
from shared.pagination import decode_position, next_cursor, page_after
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
    wallet. `max_rate` is the most the caller agreed to pay per minute, if they said.

    The hold comes first and the call is recorded open once it is held, so an open call
    always has its hold: ending one needs no look at the hold, and nothing is billed for
    a call that never started (no record, no capture)."""
    if receiver_id == caller_id:
        raise InvalidRequest(
            "You cannot call yourself",
            {"receiverId": ["is your own id"]},
            code=ErrorCode.VALIDATION_ERROR,
        )
    receiver = find_active_user(ctx.db, str(receiver_id))
    if receiver is None:
        raise NotFound("No such user to call", {"receiverId": str(receiver_id)})
    rate = rate_of(receiver, ctx.config)
    if max_rate is not None and rate > max_rate:
        raise Conflict(
            "The receiver's rate is higher than the costPerMinute you accept",
            {"ratePerMinute": to_major(rate)},
            code=ErrorCode.RATE_ABOVE_LIMIT,
        )
    tariff = Tariff(rate, ctx.config.connect_fee, ctx.config.billing_increment_seconds)
    call = _new_call(ctx, caller_id, receiver_id, tariff)
    with _caller_lock(ctx, caller_id):
        first, budget = _reserve_first_block(ctx, call, tariff)
        call.update(reservation_fields(ctx.config, call, 0, first, last_chance=False))
        _record_call(ctx, call)
    live_events.publish_call(ctx.redis, call, live_events.CALL_INITIATED)
    max_duration = min(tariff.seconds_covered(budget), duration_cap(ctx.config))
    return Initiated(call, max_duration, [follow(ctx, call, budget)])


@contextmanager
def _caller_lock(ctx: CallContext, caller_id: ObjectId) -> Iterator[None]:
    """Serialises one caller's initiates so they see each other's slots and holds. Only
    an optimisation: the slot index and the ledger's conditional writes are the guarantee."""
    lock = ctx.redis.lock(
        f"{_LOCK_PREFIX}{caller_id}", timeout=ctx.lock_timeout, blocking_timeout=ctx.lock_wait
    )
    if not lock.acquire():
        raise Conflict(
            "Another call of yours is being initiated; retry shortly", code=ErrorCode.BUSY
        )
    try:
        yield
    finally:
        if lock.owned():
            lock.release()


def _new_call(
    ctx: CallContext, caller_id: ObjectId, receiver_id: ObjectId, tariff: Tariff
) -> dict[str, Any]:
    """The open call, not yet recorded. Billing runs from now. The wallet was opened at
    signup; if it is missing, the hold is refused as for an empty one."""
    now = ctx.clock()
    call_id = ObjectId()
    return {
        "_id": call_id,
        "callerId": caller_id,
        "receiverId": receiver_id,
        "currency": ctx.currency,
        "account": wallet_id(caller_id, ctx.currency),
        "holdId": hold_id_of(call_id),
        "ratePerMinute": tariff.rate_per_minute,
        "connectFee": tariff.connect_fee,
        "incrementSeconds": tariff.increment_seconds,
        # The fee, like the tariff, is the one in force when the call started: a setting
        # changed mid-call re-prices nothing, and a retried settlement splits the same.
        "platformFeeBasisPoints": fee_basis_points(ctx.config.platform_fee_percent),
        "status": OPEN,
        "open": True,
        "settled": False,
        "startedAt": now,
        "createdAt": now,
    }


def _reserve_first_block(ctx: CallContext, call: dict[str, Any], tariff: Tariff) -> tuple[int, int]:
    """Hold the first block: (seconds reserved, the caller's budget: what was available
    before). Usually one hold of a whole block; only a refused one reads the wallet, to
    say why or to hold what the balance buys."""
    whole = whole_block(ctx.config, 0)
    try:
        hold = _hold_first_block(ctx, call, tariff, whole)
    except InsufficientFunds:
        return _reserve_what_is_left(ctx, call, tariff)
    return whole, tariff.cost(whole) + (hold.available or 0)  # a fresh key never replays


def _reserve_what_is_left(
    ctx: CallContext, call: dict[str, Any], tariff: Tariff
) -> tuple[int, int]:
    budget, restricted = wallet_state(ctx, call["account"])
    if restricted:
        raise PaymentRequired(
            "The wallet is restricted and cannot pay for calls", code=ErrorCode.WALLET_RESTRICTED
        )
    if tariff.seconds_covered(budget) == 0:
        required = tariff.cost(tariff.increment_seconds)
        raise PaymentRequired(
            INSUFFICIENT_BALANCE, {"required": to_major(required), "available": to_major(budget)}
        )
    first = reservation_target(ctx.config, tariff, 0, budget)
    try:
        _hold_first_block(ctx, call, tariff, first)
    except InsufficientFunds:  # spent elsewhere since we looked
        raise PaymentRequired(INSUFFICIENT_BALANCE) from None
    return first, budget


def _hold_first_block(
    ctx: CallContext, call: dict[str, Any], tariff: Tariff, seconds: int
) -> HoldResult:
    """Hold `seconds` of talk; a restricted wallet refuses it like an empty one. Refused
    or busy, nothing was held; any other failure may have held it: give it back."""
    try:
        return ctx.ledger.hold(
            f"call:{call['_id']}:hold",
            call["account"],
            tariff.cost(seconds),
            hold_expiry(ctx.config, call, seconds),
            hold_id=call["holdId"],
            reference=f"call:{call['_id']}",
            refuse_restricted=True,
        )
    except DomainError:
        raise  # refused (funds, restriction, a busy wallet): the hold was not placed
    except BaseException:
        _give_back(ctx, call)
        raise


def _record_call(ctx: CallContext, call: dict[str, Any]) -> None:
    """Insert the held call in its caller's first free slot: the unique slot index
    refuses a taken one, so the common case is one insert. A call that can't be
    recorded gives its hold back (a gateway killed in between leaves the hold to expire
    on its own, billing nothing)."""
    try:
        call["slot"] = _insert_in_free_slot(ctx, call)
    except BaseException:
        _give_back(ctx, call)
        raise


def _insert_in_free_slot(ctx: CallContext, call: dict[str, Any]) -> int:
    limit = ctx.config.max_concurrent
    for slot in range(limit):
        try:
            ctx.db.calls.insert_one({**call, "slot": slot})
        except DuplicateKeyError:
            continue  # taken by another open call of this caller
        return slot
    raise Conflict(
        f"You already have {limit} open call(s); end one before starting another",
        {"maxConcurrent": limit},
        code=ErrorCode.CALL_LIMIT_REACHED,
    )


def _give_back(ctx: CallContext, call: dict[str, Any]) -> None:
    """Release the hold of a call that did not start, if it was placed."""
    with suppress(NotFound, HoldNotOpen):
        ctx.ledger.release(f"call:{call['_id']}:abandon", call["holdId"], account=call["account"])


def end(ctx: CallContext, call_id: ObjectId, user_id: ObjectId) -> tuple[dict, list[Followup]]:
    """End the call now (caller or receiver only). Every end of one call answers the same;
    the capture follows in the settle task."""
    now = ctx.clock()
    call = hang_up(ctx, call_id, user_id, now) or _end_otherwise(ctx, call_id, user_id, now)
    followups = [] if call.get("settled") else [_settle_now(call, now)]
    return end_view(call), followups


def _end_otherwise(
    ctx: CallContext, call_id: ObjectId, user_id: ObjectId, now: datetime
) -> dict[str, Any]:
    """The rarer ends: of a call already ended, one at or past its paidUntil, or one
    the user may not end or that does not exist."""
    call = ctx.db.calls.find_one({"_id": call_id})
    if call is None:
        raise NotFound("No such call", {"callId": str(call_id)})
    role = role_of(call, user_id)
    if role is None:
        raise Forbidden("Only the caller or the receiver can end this call")
    if call["status"] == OPEN:
        return close_call(ctx, call, f"{role}_hangup", now)
    return rated(call)


def _settle_now(call: dict[str, Any], now: datetime) -> Followup:
    return Followup(SETTLE_TASK, now, {"call_id": str(call["_id"])})


def get_call(ctx: CallContext, call_id: ObjectId, user_id: ObjectId) -> dict[str, Any]:
    """A call for its participants; anyone else learns nothing, not even that it exists."""
    call = ctx.db.calls.find_one({"_id": call_id})
    if call is None or role_of(call, user_id) is None:
        raise NotFound("No such call", {"callId": str(call_id)})
    return call_view(call, user_id)


# Each role's page is served by its own index (calls_by_caller_newest, _receiver_).
_ROLE_FIELDS = {"caller": "callerId", "receiver": "receiverId"}


def history(
    ctx: CallContext, user_id: ObjectId, role: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """The user's calls newest first, in one role or both; and the next page's cursor."""
    roles = [role] if role else list(_ROLE_FIELDS)
    after = decode_position(cursor)
    pages = [page_after(ctx.db.calls, {_ROLE_FIELDS[r]: user_id}, limit, after) for r in roles]
    newest = heapq.merge(*pages, key=lambda c: (c["createdAt"], c["_id"]), reverse=True)
    page = list(newest)[:limit]
    return [call_view(call, user_id) for call in page], next_cursor(page, limit)
