"""The ledger's invariants, checked by one function that tests and a beat job both call.

A violation is reported, logged at error level and counted; it is never repaired here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from pymongo.database import Database
from pymongo.read_concern import ReadConcern

from shared.ledger.accounts import ACCOUNTS, HOLDS, currency_of, keeps_running_balance
from shared.ledger.journal import ENTRIES
from shared.ledger.reads import LedgerReads
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


@dataclass(frozen=True)
class _Snapshot:
    """Everything the rules read, from one consistent point in time, so a movement
    committing while we read can't look like a violation."""

    accounts: list[dict[str, Any]]
    posted: dict[str, int]
    held: dict[str, int]
    unbalanced_entries: list[dict[str, Any]]


def _read_snapshot(db: Database) -> _Snapshot:
    with (
        db.client.start_session() as session,
        session.start_transaction(read_concern=ReadConcern("snapshot")),
    ):
        accounts = [
            account
            for account in db[ACCOUNTS].find(
                {}, {"balance": 1, "held": 1, "available": 1, "kind": 1}, session=session
            )
            if keeps_running_balance(account["_id"])
        ]
        return _Snapshot(
            accounts=accounts,
            posted=LedgerReads(db).posted_sums(session=session),
            held=_sums(db[HOLDS].aggregate(_HELD_PER_ACCOUNT, session=session)),
            unbalanced_entries=list(db[ENTRIES].aggregate(_UNBALANCED_ENTRIES, session=session)),
        )


def _sums(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    return {row["_id"]: int(row["total"]) for row in rows}


_HELD_PER_ACCOUNT = [
    {"$match": {"status": "open"}},
    {"$group": {"_id": "$account", "total": {"$sum": "$amount"}}},
]


def _currencies_sum_to_zero(
    accounts: list[dict[str, Any]], posted: dict[str, int]
) -> list[Violation]:
    """Running balances plus the system accounts' postings, per currency, net to zero."""
    totals: dict[str, int] = {}
    for account in accounts:
        currency = currency_of(account["_id"])
        totals[currency] = totals.get(currency, 0) + int(account["balance"])
    for account_id, amount in posted.items():
        if not keeps_running_balance(account_id):
            totals[currency_of(account_id)] = totals.get(currency_of(account_id), 0) + amount
    return [
        Violation("currency_balances_sum_to_zero", currency, 0, total)
        for currency, total in totals.items()
        if total != 0
    ]


def _balances_match_postings(
    accounts: list[dict[str, Any]], posted: dict[str, int]
) -> list[Violation]:
    return [
        Violation("balance_equals_postings", a["_id"], posted.get(a["_id"], 0), int(a["balance"]))
        for a in accounts
        if posted.get(a["_id"], 0) != int(a["balance"])
    ]


def _held_matches_open_holds(
    accounts: list[dict[str, Any]], held: dict[str, int]
) -> list[Violation]:
    return [
        Violation("held_equals_open_holds", a["_id"], held.get(a["_id"], 0), int(a["held"]))
        for a in accounts
        if held.get(a["_id"], 0) != int(a["held"])
    ]


def _available_is_kept(accounts: list[dict[str, Any]]) -> list[Violation]:
    """The stored `available` that spending writes check is balance - held."""
    return [
        Violation("available_equals_balance_less_held", a["_id"], expected, int(a["available"]))
        for a in accounts
        if (expected := int(a["balance"] - a["held"])) != int(a.get("available", expected - 1))
    ]


def _wallets_not_negative(accounts: list[dict[str, Any]]) -> list[Violation]:
    return [
        Violation("available_not_negative", a["_id"], 0, int(a["balance"] - a["held"]))
        for a in accounts
        if a["kind"] == "user" and (a["balance"] - a["held"] < 0 or a["held"] < 0)
    ]


# $unwind + $group rather than {$sum: "$postings.amount"} in a $project: SecantusDB
# evaluates that array path to nothing, so every entry would look balanced.
_UNBALANCED_ENTRIES = [
    {"$unwind": "$postings"},
    {"$group": {"_id": "$_id", "total": {"$sum": "$postings.amount"}}},
    {"$match": {"total": {"$ne": 0}}},
]


def _entries_balance(unbalanced: list[dict[str, Any]]) -> list[Violation]:
    return [
        Violation("entry_balances", str(row["_id"]), 0, int(row["total"])) for row in unbalanced
    ]


def check_invariants(db: Database) -> list[Violation]:
    """Every violated invariant, each logged at error level. An empty list means healthy."""
    snapshot = _read_snapshot(db)
    violations = [
        *_currencies_sum_to_zero(snapshot.accounts, snapshot.posted),
        *_balances_match_postings(snapshot.accounts, snapshot.posted),
        *_held_matches_open_holds(snapshot.accounts, snapshot.held),
        *_available_is_kept(snapshot.accounts),
        *_wallets_not_negative(snapshot.accounts),
        *_entries_balance(snapshot.unbalanced_entries),
    ]
    for violation in violations:
        log.error("ledger_invariant_violated", **violation.as_dict())
    return violations
