"""The ledger: the one place where money moves.

Every operation
- carries an idempotency key: a repeat with the same parameters returns the first
  result, the same key with other parameters raises IdempotencyConflict;
- runs as one MongoDB multi-document transaction: the operation record, the journal
  entry, its postings, the balance changes and the hold state commit together or not
  at all;
- takes Redis locks on the accounts it writes (system accounts too), in sorted order,
  to serialise writers, and still writes conditionally (the version read, and
  available >= 0) so a lost lock cannot lose an update;
- retries write conflicts and transient errors a bounded number of times.

Amounts are integers in minor units. A posting's amount is signed: positive adds to
the account's balance, negative takes from it; an entry's postings sum to zero.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from bson import Int64, ObjectId
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from shared import audit, live_events
from shared.errors import Conflict, DomainError, InvalidRequest, NotFound, PaymentRequired
from shared.ledger.accounts import (
    SystemAccount,
    balance_of,
    currency_of,
    is_user_wallet,
    keeps_running_balance,
    new_account_document,
    system_account_id,
)
from shared.ledger.locks import account_locks
from shared.logs import get_logger
from shared.mongo import get_db
from shared.redis_conn import get_redis
from shared.settings import Settings

log = get_logger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 0.005
TRANSIENT_LABELS = ("TransientTransactionError", "UnknownTransactionCommitResult")


class InsufficientFunds(PaymentRequired):
    pass


class IdempotencyConflict(Conflict):
    pass


class HoldNotOpen(Conflict):
    pass


class _StaleAccount(Exception):
    """A conditional update matched nothing: someone wrote since we read. Retry."""


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


@dataclass
class _Change:
    """What one operation does to one account."""

    balance: int = 0
    held: int = 0


class _Transaction:
    """The work of one attempt: reads accounts, checks, and stages conditional writes."""

    def __init__(self, db: Database, session: ClientSession, now: datetime):
        self.db = db
        self.session = session
        self.now = now
        self.accounts: dict[str, dict[str, Any]] = {}
        # account -> (balance, held) after this transaction: for the audit record and
        # the live balance events.
        self.after: dict[str, tuple[int, int]] = {}

    def load_accounts(self, account_ids: Sequence[str]) -> None:
        tracked = {a for a in account_ids if keeps_running_balance(a)}
        wanted = sorted(tracked - set(self.accounts))
        for doc in self.db.accounts.find({"_id": {"$in": wanted}}, session=self.session):
            self.accounts[doc["_id"]] = doc
        for account_id in wanted:
            if account_id not in self.accounts:
                self.accounts[account_id] = self._open(account_id)

    def _open(self, account_id: str) -> dict[str, Any]:
        document = new_account_document(account_id, currency_of(account_id))
        self.db.accounts.insert_one(document, session=self.session)
        return document

    def currency_of(self, account_ids: Sequence[str]) -> str:
        currencies = {currency_of(a) for a in account_ids}
        if len(currencies) != 1:
            raise InvalidRequest("All accounts of one movement must share a currency")
        return currencies.pop()

    def apply(self, changes: dict[str, _Change]) -> dict[str, int]:
        """Write each change conditionally; returns each running balance after. System
        accounts change by their postings alone (see SystemAccount)."""
        balances_after = {}
        for account_id, change in changes.items():
            if not keeps_running_balance(account_id):
                continue
            account = self.accounts[account_id]
            balance = int(account["balance"]) + change.balance
            held = int(account["held"]) + change.held
            if account["kind"] == "user" and (balance - held < 0 or held < 0):
                raise InsufficientFunds(
                    "Insufficient wallet balance",
                    {"account": account_id, "available": int(account["balance"] - account["held"])},
                )
            self._write(account, change)
            balances_after[account_id] = balance
            self.after[account_id] = (balance, held)
        return balances_after

    def _write(self, account: dict[str, Any], change: _Change) -> None:
        condition: dict[str, Any] = {"_id": account["_id"], "version": account["version"]}
        if account["kind"] == "user":
            # The database re-checks what we checked in Python: available stays >= 0.
            condition["$expr"] = {
                "$gte": [
                    {
                        "$subtract": [
                            {"$add": ["$balance", change.balance]},
                            {"$add": ["$held", change.held]},
                        ]
                    },
                    0,
                ]
            }
        result = self.db.accounts.update_one(
            condition,
            {
                "$inc": {
                    "balance": Int64(change.balance),
                    "held": Int64(change.held),
                    "version": Int64(1),
                }
            },
            session=self.session,
        )
        if result.matched_count != 1:
            raise _StaleAccount(account["_id"])

    def record_entry(
        self,
        key: str,
        kind: str,
        postings: Sequence[Posting],
        balances_after: dict[str, int],
        details: dict[str, Any],
    ) -> str:
        entry_id = ObjectId()
        currency = self.currency_of([p.account for p in postings])
        self.db.entries.insert_one(
            {
                "_id": entry_id,
                "key": key,
                "kind": kind,
                "currency": currency,
                "postings": [{"account": p.account, "amount": Int64(p.amount)} for p in postings],
                "createdAt": self.now,
                **details,
            },
            session=self.session,
        )
        common = {
            "entryId": entry_id,
            "key": key,
            "currency": currency,
            "status": "success",
            "reference": details.get("reference") or key,
            "description": details.get("description", ""),
            "createdAt": self.now,
        }
        self.db.postings.insert_many(
            [_posting_document(p, common, balances_after.get(p.account)) for p in postings],
            session=self.session,
        )
        return str(entry_id)

    def find_hold(self, hold_id: str) -> dict[str, Any]:
        hold = self.db.holds.find_one({"_id": hold_id}, session=self.session)
        if hold is None:
            raise NotFound("No such hold", {"holdId": hold_id})
        return hold

    def update_open_hold(self, hold_id: str, update: dict[str, Any]) -> None:
        result = self.db.holds.update_one(
            {"_id": hold_id, "status": "open"}, update, session=self.session
        )
        if result.matched_count != 1:
            raise _StaleAccount(hold_id)


def _posting_document(
    posting: Posting, common: dict[str, Any], balance_after: int | None
) -> dict[str, Any]:
    document = {
        **common,
        "account": posting.account,
        "amount": Int64(posting.amount),
        "type": "credit" if posting.amount > 0 else "debit",
    }
    if balance_after is not None:  # system accounts keep no running balance
        document["balanceAfter"] = Int64(balance_after)
    return document


def _fingerprint(op: str, params: dict[str, Any]) -> str:
    canonical = json.dumps({"op": op, **params}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _is_transient(exc: PyMongoError) -> bool:
    return any(exc.has_error_label(label) for label in TRANSIENT_LABELS)


class Ledger:
    def __init__(
        self,
        db: Database,
        redis_client: redis.Redis,
        *,
        lock_timeout: float = 10.0,
        lock_wait: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.db = db
        self.redis = redis_client
        self.lock_timeout = lock_timeout
        self.lock_wait = lock_wait
        self.clock = clock

    def balance_of(self, account_id: str) -> int:
        return balance_of(self.db, account_id)

    @classmethod
    def from_settings(cls, settings: Settings) -> Ledger:
        """The process's ledger over its own Mongo and Redis clients."""
        return cls(
            get_db(settings.database_url),
            get_redis(settings.redis_url),
            lock_timeout=settings.lock_timeout_seconds,
            lock_wait=settings.lock_wait_seconds,
        )

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
        postings = tuple(postings)
        _check_postings(postings)
        params = {"postings": [(p.account, p.amount) for p in postings], "kind": kind}

        def work(tx: _Transaction) -> dict[str, Any]:
            tx.load_accounts([p.account for p in postings])
            changes: dict[str, _Change] = {}
            for p in postings:
                changes.setdefault(p.account, _Change()).balance += p.amount
            after = tx.apply(changes)
            details = {"reference": reference, "description": description}
            entry_id = tx.record_entry(key, kind, postings, after, details)
            return {"entryId": entry_id}

        result = self._run(key, kind, params, [p.account for p in postings], work)
        return EntryResult(key, result["entryId"], postings, result["replayed"])

    def transfer(
        self,
        key: str,
        source: str,
        destinations: Sequence[tuple[str, int]],
        **details: Any,
    ) -> EntryResult:
        """Move money from one account to one or more (a split)."""
        for _, amount in destinations:
            _check_positive(amount)  # else a negative share would move money backwards
        total = sum(amount for _, amount in destinations)
        postings = [Posting(source, -total), *(Posting(a, amount) for a, amount in destinations)]
        return self.post(key, postings, **details)

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
        source_id = system_account_id(source, account.rsplit(":", 1)[-1])
        return self.transfer(key, source_id, [(account, amount)], kind="credit", **details)

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
        destination_id = system_account_id(destination, account.rsplit(":", 1)[-1])
        return self.transfer(key, account, [(destination_id, amount)], kind="debit", **details)

    # ---- holds -----------------------------------------------------------------------

    def hold(
        self,
        key: str,
        account: str,
        amount: int,
        expires_at: datetime,
        *,
        hold_id: str | None = None,
        reference: str | None = None,
    ) -> HoldResult:
        """Reserve `amount` of the wallet's available balance until captured, released or
        expired. A hold already counts as spent for every other operation."""
        _check_positive(amount)
        # The caller's hold id (None when omitted), so a repeat without one still replays.
        params = {"account": account, "amount": amount, "expiresAt": expires_at, "hold": hold_id}
        hold_id = hold_id or str(ObjectId())

        def work(tx: _Transaction) -> dict[str, Any]:
            tx.load_accounts([account])
            tx.apply({account: _Change(held=amount)})
            tx.db.holds.insert_one(
                {
                    "_id": hold_id,
                    "key": key,
                    "account": account,
                    "currency": tx.accounts[account]["currency"],
                    "amount": Int64(amount),
                    "status": "open",
                    "reference": reference,
                    "expiresAt": expires_at,
                    "createdAt": tx.now,
                },
                session=tx.session,
            )
            return {"holdId": hold_id, "account": account, "amount": amount, "status": "open"}

        return self._hold_result(key, self._run(key, "hold", params, [account], work))

    def extend_hold(self, key: str, hold_id: str, amount: int, expires_at: datetime) -> HoldResult:
        """Add `amount` to an open hold and push its expiry out."""
        _check_positive(amount)
        account = self._hold_account(hold_id)
        params = {"hold": hold_id, "amount": amount, "expiresAt": expires_at}

        def work(tx: _Transaction) -> dict[str, Any]:
            hold = _open_hold(tx, hold_id)
            tx.load_accounts([account])
            tx.apply({account: _Change(held=amount)})
            tx.update_open_hold(
                hold_id, {"$inc": {"amount": Int64(amount)}, "$set": {"expiresAt": expires_at}}
            )
            total = int(hold["amount"]) + amount
            return {"holdId": hold_id, "account": account, "amount": total, "status": "open"}

        return self._hold_result(key, self._run(key, "extend_hold", params, [account], work))

    def capture(
        self,
        key: str,
        hold_id: str,
        amount: int,
        destinations: Sequence[tuple[str, int]] | None = None,
        *,
        reference: str | None = None,
        description: str = "",
    ) -> EntryResult:
        """Take `amount` (at most what is held) from the hold's wallet and pay it to the
        destinations (default: platform revenue); the rest of the hold is released."""
        if not _is_integer(amount) or amount < 0:
            raise InvalidRequest("A capture amount must be a non-negative integer in minor units")
        account = self._hold_account(hold_id)
        currency = account.rsplit(":", 1)[-1]
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
        params = {"hold": hold_id, "amount": amount, "destinations": destinations}

        def work(tx: _Transaction) -> dict[str, Any]:
            hold = _open_hold(tx, hold_id)
            held = int(hold["amount"])
            if amount > held:
                raise InvalidRequest(
                    "Cannot capture more than is held", {"held": held, "amount": amount}
                )
            tx.load_accounts([account, *(d for d, _ in destinations)])
            changes = {account: _Change(balance=-amount, held=-held)}
            for destination, share in destinations:
                changes.setdefault(destination, _Change()).balance += share
            after = tx.apply(changes)
            entry_id = None
            if postings:
                details = {"reference": reference, "description": description, "holdId": hold_id}
                entry_id = tx.record_entry(key, "capture", postings, after, details)
            tx.update_open_hold(
                hold_id,
                {"$set": {"status": "captured", "captured": Int64(amount), "closedAt": tx.now}},
            )
            return {"entryId": entry_id}

        touched = [account, *(d for d, _ in destinations)]
        result = self._run(key, "capture", params, touched, work)
        return EntryResult(key, result["entryId"], postings, result["replayed"])

    def release(self, key: str, hold_id: str, *, status: str = "released") -> HoldResult:
        """Give a hold's whole amount back to the wallet's available balance."""
        account = self._hold_account(hold_id)
        params = {"hold": hold_id, "status": status}

        def work(tx: _Transaction) -> dict[str, Any]:
            hold = _open_hold(tx, hold_id)
            tx.load_accounts([account])
            tx.apply({account: _Change(held=-int(hold["amount"]))})
            tx.update_open_hold(hold_id, {"$set": {"status": status, "closedAt": tx.now}})
            return {"holdId": hold_id, "account": account, "amount": 0, "status": status}

        return self._hold_result(key, self._run(key, "release", params, [account], work))

    def expire_holds(self, now: datetime | None = None, limit: int = 500) -> int:
        """Release holds past their expiry; returns how many this call expired."""
        now = now or self.clock()
        expired = 0
        due = self.db.holds.find({"status": "open", "expiresAt": {"$lte": now}}, {"_id": 1}).limit(
            limit
        )
        for hold in due:
            try:
                result = self.release(f"hold:{hold['_id']}:expire", hold["_id"], status="expired")
            except HoldNotOpen:
                continue  # captured or released since we looked
            expired += not result.replayed
        return expired

    # ---- machinery -------------------------------------------------------------------

    def _hold_account(self, hold_id: str) -> str:
        hold = self.db.holds.find_one({"_id": hold_id}, {"account": 1})
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
        )

    def _run(
        self,
        key: str,
        op: str,
        params: dict[str, Any],
        account_ids: Sequence[str],
        work: Callable[[_Transaction], dict[str, Any]],
    ) -> dict[str, Any]:
        fingerprint = _fingerprint(op, params)
        replay = self._replay(key, fingerprint)
        if replay is not None:
            return replay
        # Only accounts with a balance document can conflict; system accounts are
        # append-only, so writers on different wallets never wait for each other.
        locked = [a for a in account_ids if keeps_running_balance(a)]
        with account_locks(self.redis, locked, timeout=self.lock_timeout, wait=self.lock_wait):
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    return self._attempt(key, op, fingerprint, work)
                except (DomainError, DuplicateKeyError) as exc:
                    # A repeat of this key may have committed since the first look (a
                    # racing request, or a writer whose lock expired); what it did is why
                    # this attempt failed, and its result is the answer.
                    replay = self._replay(key, fingerprint)
                    if replay is not None:
                        return replay
                    if isinstance(exc, DuplicateKeyError):
                        raise Conflict("A record with this id already exists") from exc
                    raise
                except (_StaleAccount, PyMongoError) as exc:
                    if isinstance(exc, PyMongoError) and not _is_transient(exc):
                        raise
                    if attempt == MAX_ATTEMPTS:
                        log.error("ledger_retries_exhausted", key=key, op=op)
                        raise Conflict("The wallet is busy; retry shortly") from exc
                    time.sleep(random.uniform(0, BACKOFF_BASE_SECONDS * 2**attempt))
        raise AssertionError("unreachable")

    def _attempt(
        self,
        key: str,
        op: str,
        fingerprint: str,
        work: Callable[[_Transaction], dict[str, Any]],
    ) -> dict[str, Any]:
        with self.db.client.start_session() as session, session.start_transaction():
            tx = _Transaction(self.db, session, self.clock())
            result = work(tx)
            self.db.operations.insert_one(
                {
                    "_id": key,
                    "op": op,
                    "fingerprint": fingerprint,
                    "result": result,
                    "createdAt": tx.now,
                },
                session=session,
            )
            # Same transaction: no movement commits without its audit record.
            audit.append(
                self.db, f"ledger.{op}", _audit_payload(key, op, result, tx), session=session
            )
        log.info("ledger_operation", key=key, op=op, **result)
        self._announce(tx)
        return {**result, "replayed": False}

    def _announce(self, tx: _Transaction) -> None:
        """After the commit: each touched wallet's owner gets its new balance."""
        for account_id, (balance, held) in tx.after.items():
            if is_user_wallet(account_id):
                _, user_id, currency = account_id.split(":")
                data = live_events.balance_data(account_id, currency, balance, held)
                live_events.publish(self.redis, user_id, live_events.BALANCE, data)

    def _replay(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        record = self.db.operations.find_one({"_id": key})
        if record is None:
            return None
        if record["fingerprint"] != fingerprint:
            raise IdempotencyConflict(
                "This idempotency key was already used with different parameters",
                {"key": key},
            )
        return {**record["result"], "replayed": True}


def _audit_payload(key: str, op: str, result: dict[str, Any], tx: _Transaction) -> dict[str, Any]:
    return {
        "key": key,
        "op": op,
        "result": result,
        "accounts": {a: {"balance": b, "held": h} for a, (b, h) in tx.after.items()},
    }


def _open_hold(tx: _Transaction, hold_id: str) -> dict[str, Any]:
    hold = tx.find_hold(hold_id)
    if hold["status"] != "open":
        raise HoldNotOpen(f"The hold is already {hold['status']}", {"holdId": hold_id})
    return hold


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
