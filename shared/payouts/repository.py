"""The withdrawals collection and the per-user daily totals, every write conditional.

A withdrawal's `_id` is an ObjectId (the history's cursor is (createdAt, _id)); its
`reference` (`WDR-<_id>`) is what Monnify and the API know it by, and every look-up and
write by reference goes to the `_id` inside it (a filter on _id is served on every
engine, whatever else it says). Each (userId, idempotencyKey) is unique, so a retried or
racing request finds the first one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import Int64, ObjectId
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.pagination import Position, page_after

WITHDRAWALS = "withdrawals"
REFERENCE_PREFIX = "WDR-"
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
        self.withdrawals.delete_one(_by_reference(reference))

    def by_key(self, user_id: ObjectId, key: str) -> dict[str, Any] | None:
        return self.withdrawals.find_one({"userId": user_id, "idempotencyKey": key})

    def by_reference(self, reference: str) -> dict[str, Any] | None:
        return self.withdrawals.find_one(_by_reference(reference))

    def transition(
        self,
        reference: str,
        after: str,
        *,
        before: str | None = None,
        final: bool = False,
        **fields: Any,
    ) -> dict[str, Any] | None:
        """Move the withdrawal to `after` from `before`, or by default from any open
        status (`open` is set until a final one: an $in of statuses would make the
        embedded server walk the collection); the document after, or None if another
        path moved it first."""
        condition = {
            **_by_reference(reference),
            **({"status": before} if before else {"open": True}),
        }
        update: dict[str, Any] = {
            "$set": {"status": after, "updatedAt": datetime.now(UTC), **fields}
        }
        if final:
            update["$unset"] = {"open": ""}
        changed = self.withdrawals.update_one(condition, update)
        return self.by_reference(reference) if changed.modified_count else None

    def note(self, reference: str, note: str) -> None:
        """Record what was learnt; also pushes the next poll back."""
        self.withdrawals.update_one(
            _by_reference(reference), {"$set": {"note": note, "updatedAt": datetime.now(UTC)}}
        )

    def claim_send(self, reference: str, attempts: int, status: str) -> bool:
        """Count a send attempt, once: of two tasks that read the same count, one wins."""
        claimed = self.withdrawals.update_one(
            {**_by_reference(reference), "status": status, "sendAttempts": attempts},
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


def new_reference() -> tuple[ObjectId, str]:
    oid = ObjectId()
    return oid, f"{REFERENCE_PREFIX}{oid}"


def _by_reference(reference: str) -> dict[str, Any]:
    """The filter of a withdrawal by its reference: its _id, and the reference itself (a
    made-up reference whose tail happens to be some other document's id finds nothing)."""
    tail = reference.removeprefix(REFERENCE_PREFIX)
    oid = (
        ObjectId(tail)
        if reference.startswith(REFERENCE_PREFIX) and ObjectId.is_valid(tail)
        else None
    )
    return {"_id": oid, "reference": reference}
