"""The ledger: the one place where money moves.

Every operation
- carries an idempotency key: a repeat with the same parameters returns the first
  result, the same key with other parameters raises IdempotencyConflict;
- runs as one MongoDB multi-document transaction that writes one journal entry (its
  postings, its idempotency key and fingerprint, its result, and its audit record:
  see `journal.py`), the balance changes, and the hold state, together or not at all;
- writes every balance with a conditional `$inc` and no read before it: a wallet's
  stored `available` must cover what the operation spends, a hold must still be open;
- takes fair Redis locks on the wallets it spends from (in sorted order) so writers on
  one wallet queue instead of conflicting; the conditional write, never the lock,
  is what keeps money right;
- retries write conflicts and transient errors for a time budget that outlasts a
  replica-set election (RETRY_BUDGET_SECONDS); a commit whose outcome is unknown is
  looked up in the journal by its key before anything is retried or answered.

A first attempt costs one findAndModify per account with a running balance and per
hold, one insert of the entry, and the commit: a credit or debit 3 commands, a hold or
a capture 4. On the embedded server each findAndModify is an update plus a read (see
`update_and_read`): a credit or debit costs 4 there, a hold 5, a capture 6.
A repeated key is found by the entry's unique key index, then replayed. Credits that
arrive together can be committed together (`credit_many`): one bulk write of their
wallets, one read of them back, one insert of all their entries and one commit.

Amounts are integers in minor units. A posting's amount is signed: positive adds to
the account's balance, negative takes from it; an entry's postings sum to zero.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from bson import Int64, ObjectId
from pymongo import UpdateOne
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from shared import live_events
from shared.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    InvalidRequest,
    NotFound,
    PaymentRequired,
    refusal_or_result,
)
from shared.ledger import journal
from shared.ledger.accounts import (
    ACCOUNTS,
    HOLDS,
    SystemAccount,
    currency_of,
    is_user_wallet,
    keeps_running_balance,
    new_account_document,
    system_account_id,
)
from shared.ledger.locks import account_locks
from shared.ledger.reads import LedgerReads
from shared.logs import get_logger
from shared.metrics import LEDGER_BUSY
from shared.queries import in_chunks, update_and_read

log = get_logger(__name__)

# Transient errors (write conflicts, a primary stepping down) are retried for this long:
# longer than a replica-set election (10-12 s), so a failover is a pause, not an error.
RETRY_BUDGET_SECONDS = 15.0
BACKOFF_BASE_SECONDS = 0.005
BACKOFF_CAP_SECONDS = 0.5
# Every ledger transaction commits to a majority (it survives a failover) and reads one
# majority-committed snapshot, whatever the client's defaults are.
TRANSACTION_OPTIONS = {
    "read_concern": ReadConcern("snapshot"),
    "write_concern": WriteConcern("majority"),
}
TRANSIENT_LABELS = ("TransientTransactionError", "UnknownTransactionCommitResult")
_BALANCE_FIELDS = ("balance", "held", "available", "version")
_STATE = ("balance", "held", "version")
_BALANCES = dict.fromkeys(_STATE, 1)
_HOLD_FIELDS = {"status": 1, "account": 1, "amount": 1}


class InsufficientFunds(PaymentRequired):
    pass


class IdempotencyConflict(Conflict):
    code = ErrorCode.IDEMPOTENCY_CONFLICT


class HoldNotOpen(Conflict):
    code = ErrorCode.INVALID_STATE


@dataclass(frozen=True)
class Posting:
    account: str
    amount: int


@dataclass(frozen=True)
class EntryResult:
    key: str
    entry_id: str | None
    postings: tuple[Posting, ...]
    replayed: bool = False


@dataclass(frozen=True)
class HoldResult:
    key: str
    hold_id: str
    account: str
    amount: int
    status: str
    replayed: bool = False
    # What the wallet had available right after the hold was placed (a replay answers
    # the first run's figure); None for the other hold operations.
    available: int | None = None


@dataclass(frozen=True)
class Credit:
    """One credit of a group (`Ledger.credit_many`): what `Ledger.credit` takes."""

    key: str
    account: str
    amount: int
    reference: str | None = None
    description: str = ""


@dataclass
class Change:
    """What one operation does to one account."""

    balance: int = 0
    held: int = 0
    # The wallet must not be restricted (a call's hold): refused like a short balance.
    unrestricted: bool = False

    @property
    def available(self) -> int:
        return self.balance - self.held


def _unconditional(account_id: str, change: Change) -> bool:
    """Money arriving: no stored value has to cover it, and it may open the account."""
    spends = is_user_wallet(account_id) and change.available < 0
    return not spends and change.held >= 0 and not change.unrestricted


def _balance_update(account_id: str, change: Change, writes: int = 1) -> dict[str, Any]:
    increments = {
        "balance": change.balance,
        "held": change.held,
        "available": change.available,
        "version": writes,
    }
    update: dict[str, Any] = {"$inc": {k: Int64(v) for k, v in increments.items()}}
    if _unconditional(account_id, change):  # it may open the account (a receivable, say)
        document = new_account_document(account_id, currency_of(account_id))
        update["$setOnInsert"] = {
            k: v for k, v in document.items() if k not in (*_BALANCE_FIELDS, "_id")
        }
    return update


class _GroupWrites:
    """The balance changes of a group of credits, written in one bulk write and read back
    in one query, instead of one command per change: none has a condition to check."""

    def __init__(self) -> None:
        self.changes: list[tuple[Transaction, str, Change]] = []

    def add(self, tx: Transaction, account_id: str, change: Change) -> None:
        if not _unconditional(account_id, change):
            raise InvalidRequest("Only money arriving can be written as a group")
        self.changes.append((tx, account_id, change))

    def flush(self, db: Database, session: ClientSession) -> None:
        totals: dict[str, Change] = {}
        writes: dict[str, int] = {}
        for _, account_id, change in self.changes:
            total = totals.setdefault(account_id, Change())
            total.balance += change.balance
            total.held += change.held
            writes[account_id] = writes.get(account_id, 0) + 1
        updates = [
            UpdateOne({"_id": a}, _balance_update(a, total, writes[a]), upsert=True)
            for a, total in totals.items()
        ]
        db[ACCOUNTS].bulk_write(updates, ordered=False, session=session)
        running = {
            d["_id"]: {field: int(d[field]) for field in _STATE}
            for chunk in in_chunks(list(totals))
            for d in db[ACCOUNTS].find({"_id": {"$in": chunk}}, _BALANCES, session=session)
        }
        # Each credit sees the account after itself: the group's final state less what
        # the credits after it did.
        for tx, account_id, change in reversed(self.changes):
            after = running[account_id]
            tx.after[account_id] = after
            running[account_id] = {
                "balance": after["balance"] - change.balance,
                "held": after["held"] - change.held,
                "version": after["version"] - 1,
            }


class Transaction:
    """The writes of one attempt, each conditional, inside one session's transaction.

    Each write learns its result (a balance after, a hold's amount) as `update_and_read`
    does: one findAndModify on MongoDB, an update and a read by _id on the embedded
    server. `find_and_modify` overrides which (the tests run both)."""

    def __init__(
        self,
        db: Database,
        session: ClientSession,
        now: datetime,
        find_and_modify: bool | None,
        group: _GroupWrites | None = None,
    ):
        self.db = db
        self.session = session
        self.now = now
        self.find_and_modify = find_and_modify
        self.group = group
        self.entry_id = ObjectId()
        # account -> its balance, held and version after this transaction: for the
        # journal entry, its audit record and the live balance events.
        self.after: dict[str, dict[str, int]] = {}

    def apply(self, changes: dict[str, Change]) -> None:
        """Write each change and learn each balance after it (or leave both to the group).
        System accounts change by their postings alone."""
        for account_id, change in changes.items():
            if not keeps_running_balance(account_id):
                continue
            if self.group is not None:
                self.group.add(self, account_id, change)
            else:
                account = self._write(account_id, change)
                self.after[account_id] = {field: int(account[field]) for field in _STATE}

    def _write(self, account_id: str, change: Change) -> dict[str, Any]:
        """The account after the change."""
        condition: dict[str, Any] = {"_id": account_id}
        if is_user_wallet(account_id) and change.available < 0:
            # The database decides, on a stored field every engine serves from _id.
            condition["available"] = {"$gte": -change.available}
        if change.held < 0:  # closing a hold: what it held must still be held
            condition["held"] = {"$gte": -change.held}
        if change.unrestricted:
            condition["restricted"] = {"$ne": True}
        upsert = _unconditional(account_id, change)
        update = _balance_update(account_id, change)
        account = self._update(ACCOUNTS, condition, update, _BALANCES, upsert=upsert)
        if account is None:
            raise InsufficientFunds(
                "Insufficient wallet balance",
                {"account": account_id, "available": LedgerReads(self.db).available(account_id)},
            )
        return account

    def _update(
        self,
        collection: str,
        condition: dict[str, Any],
        update: dict[str, Any],
        fields: dict[str, int],
        *,
        upsert: bool = False,
    ) -> dict[str, Any] | None:
        return update_and_read(
            self.db[collection],
            condition,
            update,
            fields=fields,
            upsert=upsert,
            session=self.session,
            find_and_modify=self.find_and_modify,
        )

    def entry(
        self, key: str, op: str, fingerprint: str, result: dict[str, Any], **fields: Any
    ) -> dict[str, Any]:
        """The operation's journal entry, as written after its balance changes."""
        return journal.entry_document(
            self.entry_id, key, op, fingerprint, result, self.after, self.now, **fields
        )

    def record(
        self, key: str, op: str, fingerprint: str, result: dict[str, Any], **fields: Any
    ) -> None:
        """Insert the operation's journal entry; a repeated key fails on its index."""
        document = self.entry(key, op, fingerprint, result, **fields)
        self.db[journal.ENTRIES].insert_one(document, session=self.session)

    def open_hold(self, hold_id: str, update: dict[str, Any], account: str) -> dict[str, Any]:
        """Change an open hold of `account`; returns it as it is after the change."""
        condition = {"_id": hold_id, "status": "open", "account": account}
        hold = self._update(HOLDS, condition, update, _HOLD_FIELDS)
        if hold is not None:
            return hold
        # Not changed: say why.
        found = self.db[HOLDS].find_one({"_id": hold_id}, _HOLD_FIELDS, session=self.session)
        if found is None or found["account"] != account:
            raise NotFound("No such hold", {"holdId": hold_id})
        raise HoldNotOpen(f"The hold is already {found['status']}", {"holdId": hold_id})


def _fingerprint(op: str, params: dict[str, Any]) -> str:
    canonical = json.dumps({"op": op, **params}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _is_transient(exc: PyMongoError) -> bool:
    return any(exc.has_error_label(label) for label in TRANSIENT_LABELS)


class _Retries:
    """A time budget for retrying transient errors, with capped exponential backoff and
    full jitter (writers that collided don't collide again in step)."""

    def __init__(self, budget_seconds: float):
        self.deadline = time.monotonic() + budget_seconds
        self.attempts = 0

    def wait(self) -> bool:
        """Sleep before the next attempt; False once the budget is spent."""
        self.attempts += 1
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return False
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**self.attempts)
        time.sleep(min(random.uniform(0, ceiling), remaining))
        return True


# What an operation does inside its transaction: returns its result (replayed to
# repeats) and the fields of its journal entry.
_Work = Callable[[Transaction], tuple[dict[str, Any], dict[str, Any]]]


@dataclass(frozen=True)
class _Operation:
    """A balanced posting, ready to run alone (`Ledger._run`) or in a group."""

    key: str
    op: str
    params: dict[str, Any]
    postings: tuple[Posting, ...]
    work: _Work

    @property
    def accounts(self) -> list[str]:
        return [p.account for p in self.postings]


def _posting_operation(
    key: str, postings: Sequence[Posting], kind: str, reference: str | None, description: str
) -> _Operation:
    postings = tuple(postings)
    _check_postings(postings)
    params = {"postings": [(p.account, p.amount) for p in postings], "kind": kind}

    def work(tx: Transaction) -> tuple[dict[str, Any], dict[str, Any]]:
        changes: dict[str, Change] = {}
        for p in postings:
            changes.setdefault(p.account, Change()).balance += p.amount
        tx.apply(changes)
        details = {"reference": reference, "description": description}
        return {"entryId": str(tx.entry_id)}, {"postings": postings, **details}

    return _Operation(key, kind, params, postings, work)


def _credit_operation(
    credit: Credit, source: SystemAccount = SystemAccount.GATEWAY_CLEARING
) -> _Operation:
    source_id = system_account_id(source, currency_of(credit.account))
    postings = _transfer_postings(source_id, [(credit.account, credit.amount)])
    return _posting_operation(credit.key, postings, "credit", credit.reference, credit.description)


class Ledger:
    def __init__(
        self,
        db: Database,
        redis_client: redis.Redis,
        *,
        lock_timeout: float = 10.0,
        lock_wait: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        find_and_modify: bool | None = None,
        retry_seconds: float = RETRY_BUDGET_SECONDS,
    ):
        """`find_and_modify`: how a write learns its result (see `update_and_read`);
        by default, the server's way. `retry_seconds`: how long transient errors are
        retried before the answer is 'busy'."""
        self.db = db
        self.redis = redis_client
        self.lock_timeout = lock_timeout
        self.lock_wait = lock_wait
        self.clock = clock
        self.reads = LedgerReads(db)
        self.find_and_modify = find_and_modify
        self.retry_seconds = retry_seconds

    # ---- money movements -------------------------------------------------------------

    def post(
        self,
        key: str,
        postings: Sequence[Posting],
        *,
        kind: str = "transfer",
        reference: str | None = None,
        description: str = "",
    ) -> EntryResult:
        """Post a balanced journal entry: the postings' amounts must sum to zero."""
        return self._run_alone(_posting_operation(key, postings, kind, reference, description))

    def transfer(
        self,
        key: str,
        source: str,
        destinations: Sequence[tuple[str, int]],
        **details: Any,
    ) -> EntryResult:
        """Move money from one account to one or more (a split)."""
        return self.post(key, _transfer_postings(source, destinations), **details)

    def credit(
        self,
        key: str,
        account: str,
        amount: int,
        *,
        source: SystemAccount = SystemAccount.GATEWAY_CLEARING,
        **details: Any,
    ) -> EntryResult:
        """Credit a wallet from a system account (money in from Monnify, by default)."""
        return self._run_alone(_credit_operation(Credit(key, account, amount, **details), source))

    def credit_many(self, credits: Sequence[Credit]) -> list[EntryResult | DomainError]:
        """Credits from the gateway clearing account committed together (a group commit):
        each keeps its own key and its own entry (with its wallet's balance after it);
        the group takes each wallet's lock once (in sorted order), writes the wallets in
        one bulk write (a credit has no condition to check) and commits once. If the group
        fails (a repeated key, a busy wallet, a conflict) it wrote nothing, and each credit
        runs alone, so one bad item neither blocks the others nor is applied twice.
        Returns, in order, each credit's result or the domain error that refused it."""
        prepared = [refusal_or_result(_credit_operation, credit) for credit in credits]
        operations = [op for op in prepared if isinstance(op, _Operation)]
        grouped = self._run_group(operations) if len(operations) > 1 else None
        if grouped is None:
            grouped = [refusal_or_result(self._run_alone, op) for op in operations]
        results = iter(grouped)
        return [op if isinstance(op, DomainError) else next(results) for op in prepared]

    def debit(
        self,
        key: str,
        account: str,
        amount: int,
        *,
        destination: SystemAccount = SystemAccount.GATEWAY_CLEARING,
        **details: Any,
    ) -> EntryResult:
        """Debit a wallet to a system account; fails if `available` can't cover it."""
        destination_id = system_account_id(destination, currency_of(account))
        return self.transfer(key, account, [(destination_id, amount)], kind="debit", **details)

    # ---- holds -----------------------------------------------------------------------

    def hold(
        self,
        key: str,
        account: str,
        amount: int,
        expires_at: datetime | None,
        *,
        hold_id: str | None = None,
        reference: str | None = None,
        refuse_restricted: bool = False,
    ) -> HoldResult:
        """Reserve `amount` of the wallet's available balance until captured, released or
        expired (`expires_at`; None: never, as for a refund or a payout Monnify may still
        pay out, which only its verdict may close). A hold already counts as spent for every
        other operation. With `refuse_restricted`, a restricted wallet refuses it
        (InsufficientFunds) in the same conditional write, so the caller need not read the
        wallet first."""
        _check_positive(amount)
        # The caller's hold id (None when omitted), so a repeat without one still replays.
        params = {"account": account, "amount": amount, "expiresAt": expires_at, "hold": hold_id}
        hold_id = hold_id or str(ObjectId())

        def work(tx: Transaction) -> tuple[dict[str, Any], dict[str, Any]]:
            tx.apply({account: Change(held=amount, unrestricted=refuse_restricted)})
            tx.db[HOLDS].insert_one(
                {
                    "_id": hold_id,
                    "key": key,
                    "account": account,
                    "currency": currency_of(account),
                    "amount": Int64(amount),
                    "status": "open",
                    "reference": reference,
                    "expiresAt": expires_at,
                    "createdAt": tx.now,
                },
                session=tx.session,
            )
            after = tx.after[account]
            result = {
                "holdId": hold_id,
                "account": account,
                "amount": amount,
                "status": "open",
                "available": after["balance"] - after["held"],
            }
            return result, {"hold_id": hold_id, "reference": reference}

        return self._hold_result(key, self._run(key, "hold", params, [account], work))

    def extend_hold(
        self,
        key: str,
        hold_id: str,
        amount: int,
        expires_at: datetime,
        *,
        account: str | None = None,
    ) -> HoldResult:
        """Add `amount` to an open hold and push its expiry out. `account`: the hold's
        wallet, if the caller knows it (else it is looked up)."""
        _check_positive(amount)
        account = account or self._hold_account(hold_id)
        params = {"hold": hold_id, "amount": amount, "expiresAt": expires_at}

        def work(tx: Transaction) -> tuple[dict[str, Any], dict[str, Any]]:
            update = {"$inc": {"amount": Int64(amount)}, "$set": {"expiresAt": expires_at}}
            hold = tx.open_hold(hold_id, update, account)
            tx.apply({account: Change(held=amount)})
            total = int(hold["amount"])
            result = {"holdId": hold_id, "account": account, "amount": total, "status": "open"}
            return result, {"hold_id": hold_id}

        return self._hold_result(key, self._run(key, "extend_hold", params, [account], work))

    def capture(
        self,
        key: str,
        hold_id: str,
        amount: int,
        destinations: Sequence[tuple[str, int]] | None = None,
        *,
        account: str | None = None,
        reference: str | None = None,
        description: str = "",
    ) -> EntryResult:
        """Take `amount` (at most what is held) from the hold's wallet and pay it to the
        destinations (default: platform revenue); the rest of the hold is released.
        `account`: the hold's wallet, if the caller knows it (else it is looked up)."""
        if not _is_integer(amount) or amount < 0:
            raise InvalidRequest("A capture amount must be a non-negative integer in minor units")
        account = account or self._hold_account(hold_id)
        currency = currency_of(account)
        destinations = list(
            destinations or [(system_account_id(SystemAccount.PLATFORM_REVENUE, currency), amount)]
        )
        if any(not _is_integer(a) or a < 0 for _, a in destinations) or (
            sum(a for _, a in destinations) != amount
        ):
            raise InvalidRequest("The destinations of a capture must add up to its amount")
        postings = tuple(
            [Posting(account, -amount), *(Posting(d, a) for d, a in destinations if a)]
            if amount
            else []
        )
        _check_one_currency([Posting(account, 0), *(Posting(d, a) for d, a in destinations)])
        params = {"hold": hold_id, "amount": amount, "destinations": destinations}

        def work(tx: Transaction) -> tuple[dict[str, Any], dict[str, Any]]:
            captured = {"status": "captured", "captured": Int64(amount), "closedAt": tx.now}
            hold = tx.open_hold(hold_id, {"$set": captured}, account)
            held = int(hold["amount"])
            if amount > held:
                raise InvalidRequest(
                    "Cannot capture more than is held", {"held": held, "amount": amount}
                )
            changes = {account: Change(balance=-amount, held=-held)}
            for destination, share in destinations:
                changes.setdefault(destination, Change()).balance += share
            tx.apply(changes)
            entry_id = str(tx.entry_id) if postings else None
            details = {"reference": reference, "description": description, "hold_id": hold_id}
            return {"entryId": entry_id}, {"postings": postings, **details}

        touched = [account, *(d for d, _ in destinations)]
        result = self._run(key, "capture", params, touched, work)
        return EntryResult(key, result["entryId"], postings, result["replayed"])

    def release(
        self, key: str, hold_id: str, *, status: str = "released", account: str | None = None
    ) -> HoldResult:
        """Give a hold's whole amount back to the wallet's available balance. `account`:
        the hold's wallet, if the caller knows it (else it is looked up)."""
        account = account or self._hold_account(hold_id)
        params = {"hold": hold_id, "status": status}

        def work(tx: Transaction) -> tuple[dict[str, Any], dict[str, Any]]:
            hold = tx.open_hold(hold_id, {"$set": {"status": status, "closedAt": tx.now}}, account)
            tx.apply({account: Change(held=-int(hold["amount"]))})
            result = {"holdId": hold_id, "account": account, "amount": 0, "status": status}
            return result, {"hold_id": hold_id}

        return self._hold_result(key, self._run(key, "release", params, [account], work))

    def expire_holds(self, now: datetime | None = None, limit: int = 500) -> int:
        """Release holds past their expiry; returns how many this call expired."""
        now = now or self.clock()
        expired = 0
        for hold in self.reads.expired_holds(now, limit):
            try:
                result = self.release(
                    f"hold:{hold['_id']}:expire",
                    hold["_id"],
                    status="expired",
                    account=hold["account"],
                )
            except HoldNotOpen:
                continue  # captured or released since we looked
            expired += not result.replayed
        return expired

    def set_restricted(
        self,
        account_id: str,
        restricted: bool,
        reason: str,
        *,
        session: ClientSession | None = None,
    ) -> None:
        """Restrict a wallet (no new calls) or lift it; the reason is kept for operators.
        `session`: the transaction it belongs to, if any (an admin's, recording it)."""
        self.db[ACCOUNTS].update_one(
            {"_id": account_id},
            {
                "$set": {
                    "restricted": restricted,
                    "restrictedReason": reason,
                    "restrictionChangedAt": datetime.now(UTC),
                }
            },
            session=session,
        )

    # ---- machinery -------------------------------------------------------------------

    def _hold_account(self, hold_id: str) -> str:
        hold = self.reads.hold(hold_id)
        if hold is None:
            raise NotFound("No such hold", {"holdId": hold_id})
        return hold["account"]

    @staticmethod
    def _hold_result(key: str, result: dict[str, Any]) -> HoldResult:
        return HoldResult(
            key,
            result["holdId"],
            result["account"],
            result["amount"],
            result["status"],
            result["replayed"],
            result.get("available"),
        )

    def _run_alone(self, operation: _Operation) -> EntryResult:
        result = self._run(
            operation.key, operation.op, operation.params, operation.accounts, operation.work
        )
        return EntryResult(operation.key, result["entryId"], operation.postings, result["replayed"])

    def _run_group(self, operations: Sequence[_Operation]) -> list[EntryResult] | None:
        """All operations in one transaction, first attempt only; None if it failed."""
        accounts = [account for op in operations for account in op.accounts]
        try:
            with self._locks(accounts):
                transactions = self._attempt_group(operations)
        except (DomainError, PyMongoError) as exc:
            # Nothing was committed: each runs alone, with its own replay and retries.
            log.info("ledger_group_split", size=len(operations), error=type(exc).__name__)
            return None
        for tx in transactions:
            self._announce(tx)
        return [
            EntryResult(op.key, str(tx.entry_id), op.postings)
            for op, tx in zip(operations, transactions, strict=True)
        ]

    def _attempt_group(self, operations: Sequence[_Operation]) -> list[Transaction]:
        group = _GroupWrites()
        with (
            self.db.client.start_session() as session,
            session.start_transaction(**TRANSACTION_OPTIONS),
        ):
            now = self.clock()
            transactions = [
                Transaction(self.db, session, now, self.find_and_modify, group) for _ in operations
            ]
            done = [op.work(tx) for op, tx in zip(operations, transactions, strict=True)]
            group.flush(self.db, session)
            entries = [
                tx.entry(op.key, op.op, _fingerprint(op.op, op.params), result, **fields)
                for op, tx, (result, fields) in zip(operations, transactions, done, strict=True)
            ]
            # One command for every entry; a repeated key fails it, and the transaction.
            self.db[journal.ENTRIES].insert_many(entries, session=session)
        for entry in entries:
            log.info("ledger_operation", key=entry["key"], op=entry["kind"], **entry["result"])
        return transactions

    def _locks(self, account_ids: Sequence[str]) -> AbstractContextManager[None]:
        # Only accounts with a balance document can conflict; system accounts are
        # append-only, so writers on different wallets never wait for each other.
        locked = [a for a in account_ids if keeps_running_balance(a)]
        return account_locks(self.redis, locked, timeout=self.lock_timeout, wait=self.lock_wait)

    def _run(
        self,
        key: str,
        op: str,
        params: dict[str, Any],
        account_ids: Sequence[str],
        work: _Work,
    ) -> dict[str, Any]:
        fingerprint = _fingerprint(op, params)
        with self._locks(account_ids):
            retries = _Retries(self.retry_seconds)
            while True:
                try:
                    return self._attempt(key, op, fingerprint, work)
                except (DomainError, DuplicateKeyError) as exc:
                    # No read comes before the writes: a repeat of this key (a retry, a
                    # racing request, a writer whose lock expired) shows up as the entry's
                    # duplicate key, or as the refusal its first run caused; its result
                    # is the answer.
                    replay = self._replay(key, fingerprint)
                    if replay is not None:
                        return replay
                    if isinstance(exc, DuplicateKeyError):
                        raise Conflict("A record with this id already exists") from exc
                    raise
                except PyMongoError as exc:
                    if not _is_transient(exc):
                        raise
                    if not retries.wait():
                        return self._committed_or_busy(key, op, fingerprint, exc)

    def _committed_or_busy(
        self, key: str, op: str, fingerprint: str, exc: PyMongoError
    ) -> dict[str, Any]:
        """The answer once the retries are spent: the operation's result if one of its
        attempts committed after all (an unknown commit result that did apply), else
        'busy', which a client retries with the same key."""
        with suppress(PyMongoError):  # unreachable still: busy
            replay = self._replay(key, fingerprint)
            if replay is not None:
                return replay
        # The caller retries a Conflict: a warning and a count, not an error.
        log.warning("ledger_retries_exhausted", key=key, op=op)
        LEDGER_BUSY.labels(op).inc()
        raise Conflict("The wallet is busy; retry shortly", code=ErrorCode.BUSY) from exc

    def _attempt(self, key: str, op: str, fingerprint: str, work: _Work) -> dict[str, Any]:
        with self.db.client.start_session() as session:
            tx = Transaction(self.db, session, self.clock(), self.find_and_modify)
            try:
                with session.start_transaction(**TRANSACTION_OPTIONS):
                    result, fields = work(tx)
                    tx.record(key, op, fingerprint, result, **fields)
            except PyMongoError as exc:
                result = self._own_commit(key, tx, exc)
        log.info("ledger_operation", key=key, op=op, **result)
        self._announce(tx)
        return {**result, "replayed": False}

    def _own_commit(self, key: str, tx: Transaction, exc: PyMongoError) -> dict[str, Any]:
        """After a commit whose outcome is unknown (the primary stepped down, the network
        dropped the answer): this attempt's result if its entry is in the journal, so the
        caller gets it once and as its own; otherwise the error, to retry."""
        if not exc.has_error_label("UnknownTransactionCommitResult"):
            raise exc
        try:
            entry = self.reads.entry(key)
        except PyMongoError:
            raise exc from None
        if entry is None or entry["_id"] != tx.entry_id:
            raise exc  # not applied (a retry runs it), or another run's (it replays)
        log.warning("ledger_unknown_commit_applied", key=key)
        return dict(entry["result"])

    def _announce(self, tx: Transaction) -> None:
        """After the commit: each touched wallet's owner gets its new balance."""
        for account_id, state in tx.after.items():
            if is_user_wallet(account_id):
                _, user_id, currency = account_id.split(":")
                data = live_events.balance_data(
                    account_id, currency, state["balance"], state["held"]
                )
                live_events.publish(self.redis, user_id, live_events.BALANCE, data)

    def _replay(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        entry = self.reads.entry(key)
        if entry is None:
            return None
        if entry["fingerprint"] != fingerprint:
            raise IdempotencyConflict(
                "This idempotency key was already used with different parameters",
                {"key": key},
            )
        return {**entry["result"], "replayed": True}


def _transfer_postings(source: str, destinations: Sequence[tuple[str, int]]) -> list[Posting]:
    for _, amount in destinations:
        _check_positive(amount)  # else a negative share would move money backwards
    total = sum(amount for _, amount in destinations)
    return [Posting(source, -total), *(Posting(a, amount) for a, amount in destinations)]


def _is_integer(amount: object) -> bool:
    return isinstance(amount, int) and not isinstance(amount, bool)


def _check_positive(amount: int) -> None:
    if not _is_integer(amount) or amount <= 0:
        raise InvalidRequest("Amounts must be positive integers in minor units")


def _check_postings(postings: Sequence[Posting]) -> None:
    if len(postings) < 2:
        raise InvalidRequest("A journal entry needs at least two postings")
    for posting in postings:
        if not _is_integer(posting.amount):
            raise InvalidRequest("Posting amounts must be integers in minor units")
        if posting.amount == 0:
            raise InvalidRequest("A posting cannot be zero")
    if sum(p.amount for p in postings) != 0:
        raise InvalidRequest("A journal entry's postings must sum to zero")
    _check_one_currency(postings)


def _check_one_currency(postings: Sequence[Posting]) -> None:
    if len({currency_of(p.account) for p in postings}) > 1:
        raise InvalidRequest("All accounts of one movement must share a currency")
