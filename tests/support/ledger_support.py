"""Helpers for the ledger tests: fresh wallets and keys, reading state back, and the
functions that child processes run (they must live in an importable module for spawn)."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.database import Database

from shared.errors import Conflict
from shared.ledger import AccountBusy, InsufficientFunds, Ledger, check_invariants, wallet_id
from shared.ledger.ledger import Transaction
from shared.ledger.reads import LedgerReads
from shared.mongo import get_db
from shared.redis_conn import get_redis
from tests.support.threads import run_threads


def new_wallet(currency: str = "NGN") -> str:
    """A wallet id no other test uses."""
    return wallet_id(ObjectId(), currency)


def new_key(label: str = "op") -> str:
    return f"test:{label}:{uuid.uuid4().hex}"


def in_minutes(minutes: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def account_state(db: Database, account: str) -> dict[str, int]:
    """balance, held and available of an account; zeros if it was never opened."""
    reads = LedgerReads(db)
    balance, held = reads.balance(account), reads.wallet(account).held
    return {"balance": balance, "held": held, "available": balance - held}


def postings_total(db: Database, account: str) -> int:
    return LedgerReads(db).posted_sums([account]).get(account, 0)


def assert_ledger_healthy(db: Database) -> None:
    violations = check_invariants(db)
    assert violations == [], [v.as_dict() for v in violations]


def funded_wallet(ledger: Ledger, amount: int, currency: str = "NGN") -> str:
    wallet = new_wallet(currency)
    ledger.credit(new_key("fund"), wallet, amount)
    return wallet


def is_busy(exc: BaseException) -> bool:
    """The ledger's 'retry shortly' answers: the lock wait ran out, or its retries did."""
    return isinstance(exc, AccountBusy) or type(exc) is Conflict


def apply_with_retries(operation, *args: Any, attempts: int = 50, **kwargs: Any):
    """Call a ledger operation the way a client does: on a busy wallet, retry the same key."""
    for _ in range(attempts - 1):
        try:
            return operation(*args, **kwargs)
        except Conflict as exc:
            if not is_busy(exc):
                raise
    return operation(*args, **kwargs)


def debit_until_refused(ledger: Ledger, wallet: str, amount: int, count: int, label: str):
    """Try `count` debits; returns (applied, refused for insufficient funds)."""
    applied = refused = 0
    for i in range(count):
        try:
            apply_with_retries(ledger.debit, f"{label}:{i}", wallet, amount)
            applied += 1
        except InsufficientFunds:
            refused += 1
    return applied, refused


# ---- run in child processes (multiprocessing, spawn) ---------------------------------


def child_ledger(urls: dict[str, str], **options: Any) -> Ledger:
    """A ledger over clients this process builds itself from the servers' URLs."""
    return Ledger(get_db(urls["database_url"]), get_redis(urls["redis_url"]), **options)


def child_debit_threads(urls: dict[str, str], wallet: str, amount: int, count: int, label: str):
    """In a child process: 3 threads, each trying `count` debits of `amount` on `wallet`."""
    ledger = child_ledger(urls)
    results = run_threads(
        debit_until_refused,
        [(ledger, wallet, amount, count, f"{label}:t{t}") for t in range(3)],
    )
    return tuple(map(sum, zip(*results, strict=True)))


def random_operations(ledger: Ledger, wallets: list[str], count: int, seed: int, label: str):
    """A seeded random mix of credits, debits, hold+capture and hold+release."""
    rng = random.Random(seed)
    for i in range(count):
        wallet, key = rng.choice(wallets), f"{label}:{i}"
        choice = rng.randrange(4)
        try:
            if choice == 0:
                apply_with_retries(ledger.credit, key, wallet, rng.randint(1, 500))
            elif choice == 1:
                apply_with_retries(ledger.debit, key, wallet, rng.randint(1, 300))
            else:
                amount = rng.randint(1, 200)
                hold = apply_with_retries(ledger.hold, f"{key}:h", wallet, amount, in_minutes(5))
                if choice == 2:
                    apply_with_retries(ledger.capture, key, hold.hold_id, rng.randint(0, amount))
                else:
                    apply_with_retries(ledger.release, key, hold.hold_id)
        except InsufficientFunds:
            continue


def child_random_operations(urls: dict[str, str], wallets: list[str], count, seed, label):
    """In a child process: 2 threads, each running random_operations over `wallets`."""
    ledger = child_ledger(urls)
    run_threads(
        random_operations,
        [(ledger, wallets, count, seed + t, f"{label}:t{t}") for t in range(2)],
    )


def freeze_after(owner: type, method: str, report: Any, message: Any) -> None:
    """Make `owner.method` run, send `message(result, *args)` to `report`, then hang
    until the process is killed: a crash point for a child process."""
    original = getattr(owner, method)

    def frozen(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        report.put(message(result, *args))
        threading.Event().wait()

    setattr(owner, method, frozen)


def child_debit_frozen_mid_transaction(urls: dict[str, str], wallet, amount, key, report):
    """In a child process: a debit that stops inside its transaction, after the balance
    and the journal entry are written and before the commit. Sends the transaction's
    session id first, so the parent can end the dead session."""
    freeze_after(Transaction, "record", report, lambda _, tx, *a: tx.session.session_id)
    child_ledger(urls, lock_timeout=1.0).debit(key, wallet, amount)


def child_debit_frozen_after_commit(urls: dict[str, str], wallet, amount, key, report):
    """In a child process: a debit that stops right after its commit, still holding the
    wallet's lock and before returning to its caller."""
    freeze_after(Ledger, "_attempt", report, lambda result, *a: result["entryId"])
    child_ledger(urls, lock_timeout=1.0).debit(key, wallet, amount)
