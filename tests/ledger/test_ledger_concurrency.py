"""Concurrent writers against the real servers: threads in this process and writers in
separate processes (spawned, each with its own clients), on one hot wallet and spread
over many. No update may be lost, no wallet may go negative, and every wallet's journal
must add up to its balance."""

from __future__ import annotations

import multiprocessing
import random
import threading
from datetime import UTC, datetime

import redis

from shared.ledger import InsufficientFunds, Ledger, LedgerReads, check_invariants
from tests.support.ledger_support import (
    account_state,
    apply_with_retries,
    assert_ledger_healthy,
    child_debit_threads,
    child_random_operations,
    debit_until_refused,
    funded_wallet,
    in_minutes,
    new_key,
    new_wallet,
    postings_total,
    random_operations,
)
from tests.support.threads import run_threads


def assert_journal_matches(db, wallet: str, balance: int) -> None:
    state = account_state(db, wallet)
    assert state["balance"] == balance
    assert state["available"] >= 0
    assert postings_total(db, wallet) == balance
    (newest,) = LedgerReads(db).history(wallet, 1)
    assert newest.balance_after == balance


def test_threads_draining_one_hot_wallet_lose_no_update(db, redis_client):
    ledger = Ledger(db, redis_client)
    wallet = funded_wallet(ledger, 100)
    threads, tries, amount = 8, 8, 3  # 192 asked for, 100 there

    results = run_threads(
        debit_until_refused,
        [(ledger, wallet, amount, tries, new_key(f"t{t}")) for t in range(threads)],
    )

    applied = sum(a for a, _ in results)
    assert applied == 100 // amount
    assert sum(r for _, r in results) == threads * tries - applied
    assert_journal_matches(db, wallet, 100 - applied * amount)
    assert_ledger_healthy(db)


def test_concurrent_credits_and_debits_on_one_wallet_add_up(db, redis_client):
    ledger = Ledger(db, redis_client)
    wallet = funded_wallet(ledger, 50)

    def credit_many(label: str) -> int:
        for i in range(6):
            apply_with_retries(ledger.credit, f"{label}:{i}", wallet, 7)
        return 6 * 7

    def debit_many(label: str) -> int:
        applied, _ = debit_until_refused(ledger, wallet, 11, 6, label)
        return -11 * applied

    workers = [credit_many, debit_many] * 3
    changes = run_threads(lambda i: workers[i](new_key(f"w{i}")), [(i,) for i in range(6)])

    assert_journal_matches(db, wallet, 50 + sum(changes))
    assert_ledger_healthy(db)


def test_processes_and_threads_on_one_hot_wallet_lose_no_update(db, servers):
    ledger = Ledger(db, redis.Redis.from_url(servers["redis_url"]))
    wallet = funded_wallet(ledger, 200)
    processes, tries, amount = 3, 8, 7  # 3 processes x 3 threads x 8 x 7 = 504 asked for
    jobs = [(servers, wallet, amount, tries, new_key(f"p{p}")) for p in range(processes)]

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.starmap(child_debit_threads, jobs)

    applied = sum(a for a, _ in results)
    assert applied == 200 // amount
    assert sum(r for _, r in results) == processes * 3 * tries - applied
    assert_journal_matches(db, wallet, 200 - applied * amount)
    assert_ledger_healthy(db)


def test_threads_spread_over_many_wallets(db, redis_client):
    ledger = Ledger(db, redis_client)
    wallets = [new_wallet() for _ in range(40)]

    run_threads(
        random_operations,
        [(ledger, wallets, 12, random.randrange(2**32), new_key(f"s{t}")) for t in range(6)],
    )

    for wallet in wallets:
        state = account_state(db, wallet)
        assert state["available"] >= 0
        assert postings_total(db, wallet) == state["balance"]
    assert_ledger_healthy(db)


def test_processes_spread_over_many_wallets(db, servers):
    wallets = [new_wallet() for _ in range(40)]
    jobs = [(servers, wallets, 10, random.randrange(2**32), new_key(f"sp{p}")) for p in range(3)]

    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pool.starmap(child_random_operations, jobs)

    for wallet in wallets:
        state = account_state(db, wallet)
        assert state["available"] >= 0
        assert postings_total(db, wallet) == state["balance"]
    assert check_invariants(db) == []


class LockWatchingRedis(redis.Redis):
    """Sets `asked` when a writer asks for a lock (the lock's scripts are its only
    EVALSHA calls), so a test knows that writer is waiting."""

    asked: threading.Event

    def evalsha(self, *args, **kwargs):
        self.asked.set()
        return super().evalsha(*args, **kwargs)


def test_a_repeat_racing_the_first_attempt_gets_its_result(db, servers):
    """The repeat asked for the lock while the first attempt was inside its transaction,
    and found the wallet drained by it once it got the lock: it must replay, not refuse."""
    inside, gate = threading.Event(), threading.Event()

    def gated_clock() -> datetime:
        """Called inside the first attempt's transaction, with the wallet locked."""
        inside.set()
        gate.wait(30)
        return datetime.now(UTC)

    first = Ledger(db, redis.Redis.from_url(servers["redis_url"]), clock=gated_clock)
    watcher = LockWatchingRedis.from_url(servers["redis_url"])
    watcher.asked = threading.Event()
    repeat = Ledger(db, watcher)
    wallet, key = funded_wallet(repeat, 100), new_key()
    watcher.asked.clear()
    outcomes: dict[str, object] = {}

    def run(name: str, ledger: Ledger) -> None:
        try:
            outcomes[name] = ledger.debit(key, wallet, 100)
        except InsufficientFunds as exc:
            outcomes[name] = exc

    first_thread = threading.Thread(target=run, args=("first", first))
    first_thread.start()
    assert inside.wait(30)
    repeat_thread = threading.Thread(target=run, args=("repeat", repeat))
    repeat_thread.start()
    assert watcher.asked.wait(30)
    gate.set()
    first_thread.join()
    repeat_thread.join()

    assert outcomes["first"].replayed is False
    assert outcomes["repeat"].replayed is True
    assert outcomes["repeat"].entry_id == outcomes["first"].entry_id
    assert_journal_matches(db, wallet, 0)


def test_holds_raced_by_debits_never_overdraw(db, redis_client):
    ledger = Ledger(db, redis_client)
    wallet = funded_wallet(ledger, 1_000)

    def hold_then_capture(label: str) -> int:
        spent = 0
        for i in range(5):
            try:
                hold = apply_with_retries(ledger.hold, f"{label}:h{i}", wallet, 60, in_minutes(5))
            except InsufficientFunds:
                continue
            apply_with_retries(ledger.capture, f"{label}:c{i}", hold.hold_id, 45)
            spent += 45
        return spent

    def debit(label: str) -> int:
        applied, _ = debit_until_refused(ledger, wallet, 50, 5, label)
        return applied * 50

    workers = [hold_then_capture, debit] * 3
    spent = run_threads(lambda i: workers[i](new_key(f"r{i}")), [(i,) for i in range(6)])

    assert_journal_matches(db, wallet, 1_000 - sum(spent))
    assert account_state(db, wallet)["held"] == 0
    assert_ledger_healthy(db)


def test_writers_on_different_wallets_are_not_turned_away_as_busy(db, redis_client):
    """Every credit and debit also writes the shared clearing account: writers on
    different wallets must queue for it, not fail once their retries run out."""
    ledger = Ledger(db, redis_client)
    wallets = [funded_wallet(ledger, 10_000) for _ in range(8)]

    def credit_and_debit(wallet: str, label: str) -> None:
        for i in range(10):
            ledger.credit(f"{label}:c{i}", wallet, 100)
            ledger.debit(f"{label}:d{i}", wallet, 150)

    run_threads(credit_and_debit, [(wallet, new_key("busy")) for wallet in wallets])

    for wallet in wallets:
        assert_journal_matches(db, wallet, 10_000 - 10 * 50)
    assert_ledger_healthy(db)
