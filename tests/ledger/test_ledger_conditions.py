"""The ledger's guards, each tested so that it alone stands between a bad writer and the
money: the conditions of its writes, exercised where they are made (`Transaction`, in
a transaction of the test's own, begun after the other writer committed, so neither a
lock, a write conflict nor an earlier check can be what refuses), and the wallet locks,
taken in sorted order so two writers on the same two wallets can't deadlock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.ledger import HoldNotOpen, InsufficientFunds, Ledger, LedgerReads
from shared.ledger.ledger import Change, Transaction
from shared.ledger.locks import FairLock
from tests.support.ledger_support import (
    account_state,
    assert_ledger_healthy,
    funded_wallet,
    in_minutes,
    new_key,
)
from tests.support.threads import run_threads


@pytest.fixture()
def ledger(db, redis_client) -> Ledger:
    return Ledger(db, redis_client)


def in_new_transaction(db, write: Callable[[Transaction], Any]) -> Any:
    """One write of the ledger's, in a transaction begun now (a fresh snapshot)."""
    with db.client.start_session() as session, session.start_transaction():
        return write(Transaction(db, session, datetime.now(UTC), None))


def test_a_debit_planned_on_a_stale_read_is_refused_by_the_available_condition(db, ledger):
    """The writer read 250 available, another debit took 150, then the writer spends the
    150 its read allowed: the write's own condition (available >= 150) refuses it."""
    wallet, spend = funded_wallet(ledger, 250), 150
    assert LedgerReads(db).wallet(wallet).available >= spend  # what the writer saw
    ledger.debit(new_key("other"), wallet, 150)

    with pytest.raises(InsufficientFunds):
        in_new_transaction(db, lambda tx: tx.apply({wallet: Change(balance=-spend)}))

    assert account_state(db, wallet) == {"balance": 100, "held": 0, "available": 100}
    assert_ledger_healthy(db)


def test_closing_more_than_a_wallet_holds_is_refused_by_the_held_condition(db, ledger):
    """A hold of 400 was read, then released by another writer: closing the 400 it saw
    would take `held` below zero; the write's condition (held >= 400) refuses it."""
    wallet = funded_wallet(ledger, 1_000)
    hold = ledger.hold(new_key("hold"), wallet, 400, in_minutes(5))
    seen = int(LedgerReads(db).hold(hold.hold_id)["amount"])
    ledger.release(new_key("other"), hold.hold_id)

    with pytest.raises(InsufficientFunds):
        in_new_transaction(db, lambda tx: tx.apply({wallet: Change(held=-seen)}))

    assert account_state(db, wallet) == {"balance": 1_000, "held": 0, "available": 1_000}
    assert_ledger_healthy(db)


def test_a_capture_of_a_hold_read_open_before_its_release_is_refused(db, ledger):
    """The stale writer saw the hold open; another writer released it; the hold's
    condition (status open) is what refuses closing it again."""
    wallet = funded_wallet(ledger, 1_000)
    hold = ledger.hold(new_key("hold"), wallet, 400, in_minutes(5))
    assert LedgerReads(db).hold(hold.hold_id)["status"] == "open"
    ledger.release(new_key("other"), hold.hold_id)
    capture = {"$set": {"status": "captured", "captured": 400}}

    with pytest.raises(HoldNotOpen):
        in_new_transaction(db, lambda tx: tx.open_hold(hold.hold_id, capture, wallet))

    assert LedgerReads(db).hold(hold.hold_id)["status"] == "released"
    assert_ledger_healthy(db)


def test_transfers_between_two_wallets_in_opposite_directions_at_once_both_succeed(
    db, redis_client, monkeypatch
):
    """A to B and B to A at once, each made to hold its first lock until the other has
    one too (or a second has passed): taken in each caller's order they would wait on
    each other until the lock wait ran out; taken in sorted order, one waits for the
    other and both succeed."""
    ledger = Ledger(db, redis_client, lock_wait=5.0)
    a, b = funded_wallet(ledger, 1_000), funded_wallet(ledger, 1_000)
    both_hold_a_lock = threading.Barrier(2)
    first_lock = threading.local()
    acquire = FairLock.acquire

    def acquire_then_meet(lock: FairLock) -> bool:
        taken = acquire(lock)
        if taken and not getattr(first_lock, "taken", False):
            first_lock.taken = True
            with suppress(threading.BrokenBarrierError):
                both_hold_a_lock.wait(timeout=1.0)
        return taken

    monkeypatch.setattr(FairLock, "acquire", acquire_then_meet)

    results = run_threads(
        lambda source, destination: ledger.transfer(
            new_key("opposite"), source, [(destination, 100)]
        ),
        [(a, b), (b, a)],
    )

    assert [r.replayed for r in results] == [False, False]
    assert account_state(db, a)["balance"] == account_state(db, b)["balance"] == 1_000
    assert_ledger_healthy(db)
