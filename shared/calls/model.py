"""The call document, its states and end reasons, and how it reads to a participant.

A call is recorded `initiated` (open) once the gateway has placed its first hold, and
stays so until it is `ended`; `settled` turns true once its cost has been captured from
the hold. Until it ends it carries `open: true` and a `slot` number, which a partial unique
index turns into the per-caller concurrency limit.

An ended call's rating (durationSeconds, billedSeconds, cost, endReason) is a function of
its document, which no longer changes. Most ends store it at once; a participant's
hang-up before paidUntil stores only who hung up and when (one write, no read: see
`ending.hang_up`), and settlement stores the rating with `settled`. Readers take an
ended call through `rated`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bson import ObjectId

from shared.calls.rating import Tariff, billed_minutes

OPEN = "initiated"
ENDED = "ended"

# Why a call ended.
CALLER_HANGUP = "caller_hangup"
RECEIVER_HANGUP = "receiver_hangup"
INSUFFICIENT_FUNDS = "insufficient_funds"  # the money ran out: cut off
MAX_DURATION = "max_duration"  # CALL_MAX_DURATION_SECONDS reached
RENEWAL_MISSING = "renewal_missing"  # the sweeper found no renewal: billed what was held
STATUSES = (OPEN, ENDED)
END_REASONS = (CALLER_HANGUP, RECEIVER_HANGUP, INSUFFICIENT_FUNDS, MAX_DURATION, RENEWAL_MISSING)

# The calls domain's worker tasks, by name: defined once here for the worker's
# decorators, its queue routes and beat schedule, and every enqueuer (the gateway never
# imports the worker).
RENEW_TASK = "calls.renew"
CUT_OFF_TASK = "calls.cut_off"
SETTLE_TASK = "calls.settle"
SWEEP_TASK = "calls.sweep"


@dataclass(frozen=True)
class Followup:
    """A task the caller of a domain function must enqueue (domain code never does)."""

    task: str
    eta: datetime
    kwargs: dict[str, Any] = field(default_factory=dict)


def hold_id_of(call_id: ObjectId) -> str:
    return f"call:{call_id}"


def tariff_of(call: dict[str, Any]) -> Tariff:
    """The tariff fixed when the call started; later rate changes don't touch it."""
    return Tariff(
        int(call["ratePerMinute"]), int(call["connectFee"]), int(call["incrementSeconds"])
    )


def fee_basis_points(percent: Decimal) -> int:
    """PLATFORM_FEE_PERCENT (at most 2 decimals) as whole basis points, exact in BSON."""
    return int(percent * 100)


def fee_percent_of(call: dict[str, Any], current: Decimal) -> Decimal:
    """The platform fee fixed when the call started; `current` (the setting now) only for
    calls started before calls recorded their fee."""
    basis_points = call.get("platformFeeBasisPoints")
    return current if basis_points is None else Decimal(basis_points) / 100


def role_of(call: dict[str, Any], user_id: ObjectId) -> str | None:
    if call["callerId"] == user_id:
        return "caller"
    if call["receiverId"] == user_id:
        return "receiver"
    return None


RATING_FIELDS = ("endedAt", "durationSeconds", "billedSeconds", "cost", "endReason")


def rating(call: dict[str, Any], reserved: int, reason: str, now: datetime) -> dict[str, Any]:
    """The rating of a call ending at `now` with `reserved` seconds held: measured on the
    server, billed at most what is held.

    A call on its last block whose reservation ran out before `now` ended when it ran
    out, for the reason it had no further block (a late end and the cut-off agree)."""
    paid_until = call["startedAt"] + timedelta(seconds=reserved)
    if now >= paid_until and call.get("finalReason"):
        reason = call["finalReason"]
    ended_at = max(min(now, paid_until), call["startedAt"])
    duration = int((ended_at - call["startedAt"]).total_seconds())
    tariff = tariff_of(call)
    billed = min(tariff.billable_seconds(duration), reserved)
    return {
        "endedAt": ended_at,
        "durationSeconds": duration,
        "billedSeconds": billed,
        "cost": tariff.cost(billed) if reserved else 0,
        "endReason": reason,
    }


def rated(call: dict[str, Any]) -> dict[str, Any]:
    """An ended call with its rating: as stored, or for a hang-up that stored only who
    and when, rated as it was when it ended (before paidUntil, on its reservedSeconds)."""
    if "cost" in call:
        return call
    reason = f"{role_of(call, call['endedBy'])}_hangup"
    return {**call, **rating(call, int(call["reservedSeconds"]), reason, call["endedAt"])}


def end_view(call: dict[str, Any]) -> dict[str, Any]:
    """What every end of the same call answers, however many there were."""
    call = rated(call)
    return {
        "callId": str(call["_id"]),
        "status": call["status"],
        "duration": billed_minutes(call["billedSeconds"]),
        "durationSeconds": call["durationSeconds"],
        "cost": call["cost"],
        "endReason": call["endReason"],
    }


def call_view(call: dict[str, Any], viewer: ObjectId) -> dict[str, Any]:
    """A call as one of its participants sees it (history and GET /calls/<id>)."""
    ended = call["status"] == ENDED
    if ended:
        call = rated(call)
    return {
        "callId": str(call["_id"]),
        "callerId": str(call["callerId"]),
        "receiverId": str(call["receiverId"]),
        "role": role_of(call, viewer),
        "status": call["status"],
        "duration": billed_minutes(call["billedSeconds"]) if ended else None,
        "durationSeconds": call.get("durationSeconds"),
        "cost": call.get("cost"),
        "startedAt": call["startedAt"],
        "endedAt": call.get("endedAt"),
        "endReason": call.get("endReason"),
    }
