"""Per-minute rates: each user may set their own, within configured bounds; otherwise
the default applies. The price of a call is always the receiver's, set on the server."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.database import Database

from shared.calls.config import CallConfig
from shared.errors import ErrorCode, InvalidRequest
from shared.money import to_major


def rate_of(user: dict[str, Any], config: CallConfig) -> int:
    """The user's per-minute rate in minor units, kept within today's bounds (they may
    have narrowed since the user chose it)."""
    chosen = user.get("ratePerMinute")
    if chosen is None:
        return config.default_rate_per_minute
    return min(max(int(chosen), config.min_rate_per_minute), config.max_rate_per_minute)


def set_rate(db: Database, user_id: ObjectId, rate: int, config: CallConfig) -> int:
    if not config.min_rate_per_minute <= rate <= config.max_rate_per_minute:
        low, high = to_major(config.min_rate_per_minute), to_major(config.max_rate_per_minute)
        raise InvalidRequest(
            f"ratePerMinute must be between {low} and {high}",
            {"ratePerMinute": [f"must be between {low} and {high}"]},
            code=ErrorCode.VALIDATION_ERROR,
        )
    db.users.update_one({"_id": user_id}, {"$set": {"ratePerMinute": rate}})
    return rate


def clear_rate(db: Database, user_id: ObjectId) -> None:
    """Go back to the default rate."""
    db.users.update_one({"_id": user_id}, {"$unset": {"ratePerMinute": ""}})
