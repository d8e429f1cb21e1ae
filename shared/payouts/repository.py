"""The withdrawals collection and the per-user daily totals, every write conditional.

A withdrawal's `_id` is an ObjectId (the history's cursor is (createdAt, _id)); its
`reference` (`WDR-<_id>`) is what Monnify and the API know it by. Each (userId,
idempotencyKey) is unique, so a retried or racing request finds the first one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bson import Int64, ObjectId
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.pagination import Position, page_after

WITHDRAWALS = "withdrawals"
DAILY_TOTALS = "withdrawal_days"


class WithdrawalRepository:
    def __init__(self, db: Database):
        self.db = db
        self.withdrawals = db[WITHDRAWALS]

    def insert(self, withdrawal: dict[str, Any]) -> bool:
        """False if this user already used the idempotency key."""
        try:
            self.withdrawals.insert_one(withdrawal)
        except DuplicateKeyError:
            return False
        return True

    def delete(self, reference: str) -> None:
        """A refused request leaves nothing behind (its key may be used again)."""
        self.withdrawals.delete_one({"reference": reference})

    def by_key(self, user_id: ObjectId, key: str) -> dict[str, Any] | None:
        return self.withdrawals.find_one({"userId": user_id, "idempotencyKey": key})

    def by_reference(self, reference: str) -> dict[str, Any] | None:
        return self.withdrawals.find_one({"reference": reference})

    def transition(
        self, reference: str, before: Iterable[str], after: str, **fields: Any
    ) -> dict[str, Any] | None:
        """Move the withdrawal from one of `before` to `after`; the document after, or None
        if another path moved it first."""
        now = datetime.now(UTC)
        changed = self.withdrawals.update_one(
            {"reference": reference, "status": {"$in": list(before)}},
            {"$set": {"status": after, "updatedAt": now, **fields}},
        )
        return self.by_reference(reference) if changed.modified_count else None

    def note(self, reference: str, note: str) -> None:
        """Record what was learnt; also pushes the next poll back."""
        self.withdrawals.update_one(
            {"reference": reference}, {"$set": {"note": note, "updatedAt": datetime.now(UTC)}}
        )

    def claim_send(self, reference: str, attempts: int, status: str) -> bool:
        """Count a send attempt, once: of two tasks that read the same count, one wins."""
        claimed = self.withdrawals.update_one(
            {"reference": reference, "status": status, "sendAttempts": attempts},
            {"$inc": {"sendAttempts": 1}, "$set": {"sentAt": datetime.now(UTC)}},
        )
        return claimed.modified_count == 1

    def page(self, user_id: ObjectId, limit: int, after: Position | None) -> list[dict[str, Any]]:
        return page_after(self.withdrawals, {"userId": user_id}, limit, after)

    def quiet_since(self, status: str, before: datetime, limit: int) -> list[dict[str, Any]]:
        """Withdrawals in `status` untouched since `before`, least recently touched first."""
        cursor = (
            self.withdrawals.find({"status": status, "updatedAt": {"$lte": before}})
            .sort("updatedAt", ASCENDING)
            .limit(limit)
        )
        return list(cursor)

    # ---- daily totals ------------------------------------------------------------------

    def reserve_daily(self, user_id: ObjectId, day: str, amount: int, maximum: int) -> bool:
        """Add `amount` to the user's total for `day` if it stays within `maximum`, in one
        conditional write: two withdrawals at once can't pass the limit together."""
        try:
            self.db[DAILY_TOTALS].update_one(
                {"_id": f"{user_id}:{day}", "total": {"$lte": maximum - amount}},
                {"$inc": {"total": Int64(amount)}},
                upsert=True,
            )
        except DuplicateKeyError:  # the day exists and the condition failed
            return False
        return True

    def unreserve_daily(self, user_id: ObjectId, day: str, amount: int) -> None:
        self.db[DAILY_TOTALS].update_one(
            {"_id": f"{user_id}:{day}"}, {"$inc": {"total": Int64(-amount)}}
        )
