"""The ledger's invariants: checked in full (`check_invariants`, a command and the
tests), and incrementally by the beat job (`check_recent`), whose cost follows the
traffic since its last run, not the size of the ledger.

A violation is reported, logged at error level and counted; it is never repaired here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import Int64
from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.read_concern import ReadConcern

from shared.ledger.accounts import (
    ACCOUNTS,
    HOLDS,
    currency_of,
    is_user_wallet,
    keeps_running_balance,
)
from shared.ledger.journal import ENTRIES
from shared.ledger.reads import LedgerReads
from shared.logs import get_logger
from shared.queries import in_chunks

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
            for account in db[ACCOUNTS].find({}, _ACCOUNT_FIELDS, session=session)
            if keeps_running_balance(account["_id"])
        ]
        return _Snapshot(
            accounts=accounts,
            posted=LedgerReads(db).posted_sums(session=session),
            held=_sums(db[HOLDS].aggregate(_held_per_account({}), session=session)),
            unbalanced_entries=list(db[ENTRIES].aggregate(_UNBALANCED_ENTRIES, session=session)),
        )


def _sums(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    return {row["_id"]: int(row["total"]) for row in rows}


_ACCOUNT_FIELDS = {"balance": 1, "held": 1, "available": 1, "kind": 1, "version": 1}


def _held_per_account(match: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"$match": {**match, "status": "open"}},
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


# ---- incrementally -------------------------------------------------------------------

CHECKPOINTS = "ledger_checkpoints"
_WATERMARK = "watermark"
# Entries are stamped when their transaction starts and commit within its lifetime
# (MongoDB's transactionLifetimeLimitSeconds, 60 s by default): past this age, no
# entry with an older stamp can still appear.
SETTLE_SECONDS = 120
BATCH = 20_000
_ENTRY_FIELDS = {"postings": 1, "after": 1, "createdAt": 1}


@dataclass(frozen=True)
class RecentCheck:
    violations: list[Violation]
    entries: int  # checked this run
    accounts: int  # touched by them
    caught_up: bool  # False: a full batch; the next run goes on from here


def check_recent(
    db: Database,
    *,
    now: datetime | None = None,
    settle_seconds: float = SETTLE_SECONDS,
    batch: int = BATCH,
) -> RecentCheck:
    """Check the entries since the last run (at most `batch`), and the accounts they
    touched, against checkpoints this check keeps (`ledger_checkpoints`):

    - each entry balances;
    - each account's balance after each entry is its balance after the one before
      (or its checkpoint) plus the entry's postings to it: so every balance equals
      its postings, and with balanced entries every currency nets to zero;
    - a wallet's available balance never went below zero;
    - each touched account now: its document's balance is what its journal says,
      available = balance - held, and held = its open holds.

    The first run starts from the first entry, and runs go on batch by batch."""
    now = now or datetime.now(UTC)
    watermark = db[CHECKPOINTS].find_one({"_id": _WATERMARK}) or {"through": _EPOCH}
    window, through, caught_up = _window(db, watermark["through"], now, settle_seconds, batch)
    touched = sorted({account for entry in window for account in entry["after"]})
    checkpoints = _checkpoints(db, touched, watermark["through"])
    violations = [*_entries_balance(_unbalanced(window)), *_chain(window, checkpoints)]
    violations += _current_state(db, checkpoints, through)
    _save(db, checkpoints, through)
    for violation in violations:
        log.error("ledger_invariant_violated", **violation.as_dict())
    return RecentCheck(violations, len(window), len(touched), caught_up)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _window(
    db: Database, since: datetime, now: datetime, settle_seconds: float, batch: int
) -> tuple[list[dict[str, Any]], datetime, bool]:
    """Settled entries after `since`, oldest first, and how far they reach."""
    until = now - timedelta(seconds=settle_seconds)
    entries = list(
        db[ENTRIES]
        .find({"createdAt": {"$gt": since, "$lte": until}}, _ENTRY_FIELDS)
        .sort([("createdAt", 1), ("_id", 1)])
        .limit(batch)
    )
    if len(entries) < batch:
        return entries, until, True
    # A full batch: stop before its last instant, whose other entries may lie beyond.
    last = entries[-1]["createdAt"]
    complete = [e for e in entries if e["createdAt"] < last]
    return (complete, complete[-1]["createdAt"], False) if complete else (entries, last, False)


def _unbalanced(window: list[dict[str, Any]]) -> list[dict[str, Any]]:
    totals = (
        {"_id": e["_id"], "total": sum(int(p["amount"]) for p in e["postings"])} for e in window
    )
    return [row for row in totals if row["total"] != 0]


def _checkpoints(db: Database, accounts: list[str], through: datetime) -> dict[str, dict[str, int]]:
    """Each account's balance and held as of the last run. An account this check has not
    met before starts from its own postings up to then (its history predates the check,
    or the check is new): read from the accounts/createdAt index, once."""
    found = {
        c["_id"]: c
        for chunk in in_chunks(accounts)
        for c in db[CHECKPOINTS].find({"_id": {"$in": chunk}})
    }
    return {
        a: {"balance": int(found[a]["balance"]), "held": int(found[a]["held"])}
        if a in found
        else {"balance": _posted_until(db, a, through), "held": 0}
        for a in accounts
    }


def _posted_until(db: Database, account: str, through: datetime) -> int:
    earlier = db[ENTRIES].find(
        {"accounts": account, "createdAt": {"$lte": through}}, {"postings": 1}
    )
    return _posted(earlier).get(account, 0)


def _chain(window: list[dict[str, Any]], checkpoints: dict[str, dict[str, int]]) -> list[Violation]:
    """Walk each account's entries in the order of its versions (entries stamped in the
    same millisecond by two processes may sort either way by time); moves `checkpoints`
    to the last state."""
    steps: dict[str, list[tuple[int, dict[str, int], int]]] = {}
    for entry in window:
        posted = _posted([entry])
        for account, state in entry["after"].items():
            steps.setdefault(account, []).append(
                (int(state["version"]), state, posted.get(account, 0))
            )
    violations = []
    for account, account_steps in steps.items():
        for _, state, amount in sorted(account_steps, key=lambda step: step[0]):
            expected = checkpoints[account]["balance"] + amount
            balance, held = int(state["balance"]), int(state["held"])
            if balance != expected:
                violations.append(Violation("balance_equals_postings", account, expected, balance))
            if is_user_wallet(account) and balance - held < 0:
                violations.append(Violation("available_not_negative", account, 0, balance - held))
            checkpoints[account] = {"balance": balance, "held": held}
    return violations


def _current_state(
    db: Database, checkpoints: dict[str, dict[str, int]], through: datetime
) -> list[Violation]:
    """The touched accounts as they are now: each document's balance is its checkpoint
    plus the postings of the entries since (those still settling), and its held amount
    is what its open holds reserve.

    Read without a transaction (the embedded server walks every entry for a range read
    inside a snapshot transaction): the documents, then the settling entries and the
    open holds, then the documents again. An account that changed meanwhile is left for
    the next run; for one that did not, every read saw the same state of it."""
    if not checkpoints:
        return []
    accounts = list(checkpoints)
    first = _accounts(db, accounts)
    settling = db[ENTRIES].find({"createdAt": {"$gt": through}}, {"postings": 1})
    since = _posted(settling)
    held = _open_holds(db, set(accounts))
    again = _accounts(db, accounts)
    documents = [
        d for d in first.values() if again.get(d["_id"], {}).get("version") == d.get("version")
    ]
    behind_journal = [
        Violation("balance_equals_journal", d["_id"], expected, int(d["balance"]))
        for d in documents
        if (expected := checkpoints[d["_id"]]["balance"] + since.get(d["_id"], 0))
        != int(d["balance"])
    ]
    return [
        *behind_journal,
        *_held_matches_open_holds(documents, held),
        *_available_is_kept(documents),
        *_wallets_not_negative(documents),
    ]


def _accounts(db: Database, accounts: list[str]) -> dict[str, dict[str, Any]]:
    return {
        document["_id"]: document
        for chunk in in_chunks(accounts)
        for document in db[ACCOUNTS].find({"_id": {"$in": chunk}}, _ACCOUNT_FIELDS)
    }


def _posted(entries: Iterable[dict[str, Any]]) -> dict[str, int]:
    """The sum of the entries' postings per account."""
    totals: dict[str, int] = {}
    for entry in entries:
        for posting in entry["postings"]:
            totals[posting["account"]] = totals.get(posting["account"], 0) + int(posting["amount"])
    return totals


def _open_holds(db: Database, accounts: set[str]) -> dict[str, int]:
    """What the accounts' open holds reserve. All open holds in one read of the
    (status, expiresAt) index: they are as many as calls and refunds in flight, not as
    many as the ledger has ever held (an $in over accounts would make the embedded
    planner scan)."""
    held = dict.fromkeys(accounts, 0)
    for hold in db[HOLDS].find({"status": "open"}, {"account": 1, "amount": 1}):
        if hold["account"] in held:
            held[hold["account"]] += int(hold["amount"])
    return held


def _save(db: Database, checkpoints: dict[str, dict[str, int]], through: datetime) -> None:
    updates = [
        UpdateOne({"_id": account}, {"$set": {k: Int64(v) for k, v in state.items()}}, upsert=True)
        for account, state in checkpoints.items()
    ]
    updates.append(UpdateOne({"_id": _WATERMARK}, {"$set": {"through": through}}, upsert=True))
    db[CHECKPOINTS].bulk_write(updates, ordered=False)
