"""The fundings collection: the one module that writes it, and its decision log.

A funding's `_id` is its paymentReference (ours, or Monnify's for a transfer into a
reserved account); its `transactionReference` (Monnify's) has a sparse unique index.
Every status a funding moves to, and the line its `decisions` log gets for it, is
written by `FundingRepository.apply`; the statuses themselves are named in
`shared.funding.fundings`, and callers say which ones a change may start from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import Int64, ObjectId
from pymongo import ASCENDING, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from shared.queries import in_chunks

FUNDINGS = "fundings"
_DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class Change:
    """One funding's fields set (and `unset` removed), with the line `decision` adds to
    its log (None: none); with `from_statuses`, only while it is in one of them."""

    payment_reference: str
    fields: dict[str, Any] = field(default_factory=dict)
    decision: str | None = None
    unset: tuple[str, ...] = ()
    from_statuses: tuple[str, ...] = ()


class FundingRepository:
    def __init__(self, db: Database):
        self.fundings = db[FUNDINGS]

    # ---- reading ---------------------------------------------------------------------

    def by_reference(self, payment_reference: str) -> dict[str, Any] | None:
        return self.fundings.find_one({"_id": payment_reference})

    def by_key(self, user_id: ObjectId, key: str | None) -> dict[str, Any] | None:
        """The funding this user started under an Idempotency-Key."""
        return self.fundings.find_one({"userId": user_id, "idempotencyKey": key})

    def by_references(self, payment_references: set[str]) -> dict[str, dict[str, Any]]:
        return self._by("_id", list(payment_references))

    def named(
        self,
        payment_references: Sequence[str | None],
        transaction_references: Sequence[str | None],
    ) -> list[dict[str, Any] | None]:
        """Each pair's funding (None: no such funding): by paymentReference, else by
        transactionReference, in two queries whatever the number of pairs."""
        by_payment = self._by("_id", list(payment_references))
        by_transaction = self._by(
            "transactionReference",
            [
                transaction
                for payment, transaction in zip(
                    payment_references, transaction_references, strict=True
                )
                if payment not in by_payment
            ],
        )
        return [
            by_payment.get(payment) or by_transaction.get(transaction)
            for payment, transaction in zip(payment_references, transaction_references, strict=True)
        ]

    def open_since(
        self, status: str, cutoff: datetime, fields: dict[str, int], limit: int
    ) -> list[dict[str, Any]]:
        """Fundings in one status created by `cutoff`, oldest first: equality on status
        and a range on createdAt, both in fundings_by_status."""
        cursor = (
            self.fundings.find({"status": status, "createdAt": {"$lte": cutoff}}, fields)
            .sort("createdAt", ASCENDING)
            .limit(limit)
        )
        return list(cursor)

    def due_for_recheck(
        self, now: datetime, fields: dict[str, int], limit: int
    ) -> list[dict[str, Any]]:
        """Credited fundings whose recheck is due, oldest due first. Served by the sparse
        recheckAt index, which holds only what may come due, so a run reads what is due
        and nothing else."""
        cursor = (
            self.fundings.find({"recheckAt": {"$lte": now}}, fields)
            .sort("recheckAt", ASCENDING)
            .limit(limit)
        )
        return list(cursor)

    def of_the_day(
        self, start: datetime, end: datetime, transaction_references: set[str]
    ) -> list[dict[str, Any]]:
        """Fundings created in [start, end), moved under one of `transaction_references`,
        or flagged in it: one index-served query each (an $or would walk the collection
        on the embedded server), merged by _id."""
        in_day = {"$gte": start, "$lt": end}
        found: dict[str, dict[str, Any]] = {}
        for funding in self.fundings.find({"createdAt": in_day}):  # fundings_by_creation
            found.setdefault(funding["_id"], funding)
        moved = self._by("transactionReference", sorted(transaction_references))
        for funding in moved.values():
            found.setdefault(funding["_id"], funding)
        # Flagged ones among those updated that day (fundings_by_update): the embedded server
        # answers a condition on `discrepancy` ($exists, or a range) with a scan.
        for funding in self.fundings.find({"updatedAt": in_day}):
            if "discrepancy" in funding:
                found.setdefault(funding["_id"], funding)
        return list(found.values())

    def _by(self, field_name: str, values: list[str | None]) -> dict[str, dict[str, Any]]:
        wanted = sorted({v for v in values if isinstance(v, str) and v})
        # In chunks: the embedded server's cost for an $in grows with its length squared.
        # Both fields are indexed (_id, and the sparse unique transactionReference).
        return {
            funding[field_name]: funding
            for chunk in in_chunks(wanted)
            for funding in self.fundings.find({field_name: {"$in": chunk}})
        }

    # ---- writing ---------------------------------------------------------------------

    def insert_new(self, documents: list[dict[str, Any]]) -> int:
        """Insert the fundings not there yet (a webhook and reconciliation may race on
        one; a user may repeat an Idempotency-Key); returns how many were inserted."""
        if not documents:
            return 0
        try:
            return len(self.fundings.insert_many(documents, ordered=False).inserted_ids)
        except BulkWriteError as exc:
            if any(error["code"] != _DUPLICATE_KEY for error in exc.details["writeErrors"]):
                raise
            return exc.details["nInserted"]

    def apply(self, *changes: Change) -> int:
        """Set each change's fields and append its decision, in one command; returns how
        many fundings changed (a conditional change finds none once another path moved
        its funding on)."""
        if not changes:
            return 0
        updates = [_update(change) for change in changes]
        return self.fundings.bulk_write(updates, ordered=False).modified_count

    def mark_checked(self, payment_reference: str) -> None:
        """Reconciliation looked it up now (its order of work, not a change of the funding)."""
        self.fundings.update_one(
            {"_id": payment_reference}, {"$set": {"reconciledAt": datetime.now(UTC)}}
        )

    def schedule_recheck(
        self, payment_reference: str, at: datetime, while_in: Sequence[str]
    ) -> None:
        """Due a recheck at `at`, if still in one of `while_in`."""
        self.fundings.update_one(
            {"_id": payment_reference, "status": {"$in": list(while_in)}},
            {"$set": {"recheckAt": at}},
        )

    def stop_rechecking(self, payment_reference: str) -> None:
        self.fundings.update_one({"_id": payment_reference}, {"$unset": {"recheckAt": ""}})

    def reserve_refund(self, funding: dict[str, Any], amount: int, session: ClientSession) -> bool:
        """Count `amount` as refunded on the funding, if its amounts are still as read
        (False: another refund got there first), so two refunds at once can't together
        exceed what was credited."""
        # Compare-and-set on the exact amount read. A funding never refunded has no field
        # yet, so it is matched by its absence (no $or: the embedded server walks the
        # collection for one, even beside an _id).
        refunded = funding.get("amountRefunded")
        reserved = self.fundings.update_one(
            {
                "_id": funding["_id"],
                "amountCredited": funding["amountCredited"],
                "amountRefunded": {"$exists": False} if refunded is None else refunded,
            },
            {"$inc": {"amountRefunded": Int64(amount)}},
            session=session,
        )
        return reserved.matched_count == 1

    def unreserve_refund(self, payment_reference: str, amount: int) -> None:
        """A refund that moved nothing gives its amount back to the funding."""
        self.fundings.update_one(
            {"_id": payment_reference}, {"$inc": {"amountRefunded": Int64(-amount)}}
        )


def _update(change: Change) -> UpdateOne:
    now = datetime.now(UTC)
    selector: dict[str, Any] = {"_id": change.payment_reference}
    if change.from_statuses:
        selector["status"] = {"$in": list(change.from_statuses)}
    update: dict[str, Any] = {"$set": {**change.fields, "updatedAt": now}}
    if change.decision:
        update["$push"] = {"decisions": {"at": now, "decision": change.decision}}
    if change.unset:
        update["$unset"] = dict.fromkeys(change.unset, "")
    return UpdateOne(selector, update)
