"""The ledger's invariants, checked by one function that tests and a beat job both call.

A violation is reported, logged at error level and counted; it is never repaired here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pymongo.database import Database

from shared.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Violation:
    rule: str
    subject: str
    expected: int
    actual: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sums(db: Database, collection: str, match: dict[str, Any], group: str, field: str):
    pipeline = [
        {"$match": match},
        {"$group": {"_id": f"${group}", "total": {"$sum": f"${field}"}}},
    ]
    return {row["_id"]: int(row["total"]) for row in db[collection].aggregate(pipeline)}


def _currencies_sum_to_zero(db: Database) -> list[Violation]:
    totals = _sums(db, "accounts", {}, "currency", "balance")
    return [
        Violation("currency_balances_sum_to_zero", currency, 0, total)
        for currency, total in totals.items()
        if total != 0
    ]


def _balances_match_postings(db: Database, accounts: list[dict[str, Any]]) -> list[Violation]:
    posted = _sums(db, "postings", {}, "account", "amount")
    return [
        Violation("balance_equals_postings", a["_id"], posted.get(a["_id"], 0), int(a["balance"]))
        for a in accounts
        if posted.get(a["_id"], 0) != int(a["balance"])
    ]


def _held_matches_open_holds(db: Database, accounts: list[dict[str, Any]]) -> list[Violation]:
    held = _sums(db, "holds", {"status": "open"}, "account", "amount")
    return [
        Violation("held_equals_open_holds", a["_id"], held.get(a["_id"], 0), int(a["held"]))
        for a in accounts
        if held.get(a["_id"], 0) != int(a["held"])
    ]


def _wallets_not_negative(accounts: list[dict[str, Any]]) -> list[Violation]:
    return [
        Violation("available_not_negative", a["_id"], 0, int(a["balance"] - a["held"]))
        for a in accounts
        if a["kind"] == "user" and (a["balance"] - a["held"] < 0 or a["held"] < 0)
    ]


def _entries_balance(db: Database) -> list[Violation]:
    # $unwind + $group rather than {$sum: "$postings.amount"} in a $project: SecantusDB
    # evaluates that array path to nothing, so every entry would look balanced.
    pipeline = [
        {"$unwind": "$postings"},
        {"$group": {"_id": "$_id", "total": {"$sum": "$postings.amount"}}},
        {"$match": {"total": {"$ne": 0}}},
    ]
    return [
        Violation("entry_balances", str(row["_id"]), 0, int(row["total"]))
        for row in db.entries.aggregate(pipeline)
    ]


def check_invariants(db: Database) -> list[Violation]:
    """Every violated invariant, each logged at error level. An empty list means healthy."""
    accounts = list(db.accounts.find({}, {"balance": 1, "held": 1, "kind": 1}))
    violations = [
        *_currencies_sum_to_zero(db),
        *_balances_match_postings(db, accounts),
        *_held_matches_open_holds(db, accounts),
        *_wallets_not_negative(accounts),
        *_entries_balance(db),
    ]
    for violation in violations:
        log.error("ledger_invariant_violated", **violation.as_dict())
    return violations
