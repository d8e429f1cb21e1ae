"""Faults: a writer killed between steps leaves no partial state, a writer that
outlives its Redis lock cannot make two writers both succeed, and the server's own
faults (SecantusDB failpoints: a commit whose answer is lost, a primary stepping down
for seconds) are answered with the operation's result, once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymongo
import pytest
import redis
from prometheus_client import REGISTRY

from shared.errors import Conflict
from shared.ledger import HoldNotOpen, InsufficientFunds, Ledger, SystemAccount, system_account_id
from shared.ledger.accounts import ACCOUNTS, open_account
from shared.ledger.ledger import Transaction
from shared.ledger.locks import lock_key
from shared.logs import configure_logging
from tests.support.ledger_support import (
    account_state,
    assert_ledger_healthy,
    child_debit_frozen_after_commit,
    child_debit_frozen_mid_transaction,
    funded_wallet,
    in_minutes,
    is_busy,
    new_key,
    postings_total,
)
from tests.support.log_capture import capture_logs
from tests.support.polling import wait_until

CHILD_REPORT_TIMEOUT = 60


def run_child_until_frozen(target, *args: Any) -> Any:
    """Start `target` in a spawned process, wait for its report from the crash point,
    then SIGKILL it. Returns the report."""
    context = multiprocessing.get_context("spawn")
    report = context.Queue()
    child = context.Process(target=target, args=(*args, report))
    child.start()
    try:
        return report.get(timeout=CHILD_REPORT_TIMEOUT)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL


def wait_for_lock_to_expire(redis_client: redis.Redis, account: str) -> None:
    wait_until(lambda: not redis_client.exists(lock_key(account)), interval=0.05)


def nothing_recorded_for(db, key: str) -> bool:
    return db.entries.count_documents({"key": key}) == 0


def test_a_writer_killed_inside_its_transaction_leaves_nothing(db, servers, redis_client):
    # A short retry budget: the retry below is meant to find the wallet busy.
    ledger = Ledger(db, redis_client, lock_wait=5.0, retry_seconds=1.0)
    wallet, key = funded_wallet(ledger, 1_000), new_key("killed")

    session_id = run_child_until_frozen(
        child_debit_frozen_mid_transaction, servers, wallet, 300, key
    )

    # The dead transaction wrote a balance and an entry; neither is visible.
    assert account_state(db, wallet) == {"balance": 1_000, "held": 0, "available": 1_000}
    assert nothing_recorded_for(db, key)
    assert_ledger_healthy(db)

    # Until the server ends the dead transaction it still owns its writes: a retry is
    # refused as busy rather than applied beside it.
    with pytest.raises(Conflict) as refused:
        ledger.debit(key, wallet, 300)
    assert is_busy(refused.value)

    # Ending the dead session (what the server's transaction lifetime limit does on its
    # own) lets the retry through, once.
    db.client.admin.command("killSessions", [session_id])
    first = ledger.debit(key, wallet, 300)
    again = ledger.debit(key, wallet, 300)

    assert (first.replayed, again.replayed, again.entry_id) == (False, True, first.entry_id)
    assert account_state(db, wallet)["balance"] == 700
    assert postings_total(db, wallet) == 700
    assert db.entries.count_documents({"key": key}) == 1
    assert_ledger_healthy(db)


def test_a_writer_killed_after_its_commit_applied_exactly_once(db, servers, redis_client):
    ledger = Ledger(db, redis_client)
    wallet, key = funded_wallet(ledger, 1_000), new_key("killed")

    entry_id = run_child_until_frozen(child_debit_frozen_after_commit, servers, wallet, 300, key)

    # Committed, though its caller never heard; the retry gets the same result.
    retry = ledger.debit(key, wallet, 300)
    assert (retry.replayed, retry.entry_id) == (True, entry_id)
    assert account_state(db, wallet)["balance"] == 700
    assert db.entries.count_documents({"key": key}) == 1
    assert_ledger_healthy(db)


class StaleWriter:
    """Runs one ledger call in a thread that takes its lock and starts its transaction,
    then stalls before its first write until released: long enough for its Redis lock
    to expire and another writer to commit."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.has_read = threading.Event()
        self.go_on = threading.Event()
        self.outcome: Any = None
        self.thread: threading.Thread | None = None
        original = Transaction.__init__

        def start_then_stall(tx: Transaction, *args: Any) -> None:
            original(tx, *args)
            if threading.current_thread() is self.thread and not self.has_read.is_set():
                self.has_read.set()
                self.go_on.wait(30)

        monkeypatch.setattr(Transaction, "__init__", start_then_stall)

    def start(self, call) -> None:
        def run() -> None:
            try:
                self.outcome = call()
            except Exception as exc:  # the test asserts on it
                self.outcome = exc

        self.thread = threading.Thread(target=run)
        self.thread.start()
        assert self.has_read.wait(30)

    def finish(self) -> Any:
        self.go_on.set()
        self.thread.join()
        return self.outcome


def debit_past_a_lost_lock(
    db, redis_client, monkeypatch, stale_amount: int, other_amount: int
) -> tuple[str, Any]:
    """On a wallet holding 100, a debit of `stale_amount` reads the accounts, then stalls
    until its lock expires while another writer debits `other_amount`; then it goes on.
    Answers the wallet and the stale debit's outcome."""
    short_lock = Ledger(db, redis_client, lock_timeout=0.3)
    other = Ledger(db, redis_client)
    wallet = funded_wallet(other, 100)
    stale = StaleWriter(monkeypatch)

    stale.start(lambda: short_lock.debit(new_key("stale"), wallet, stale_amount))
    wait_for_lock_to_expire(redis_client, wallet)
    other.debit(new_key("other"), wallet, other_amount)
    return wallet, stale.finish()


def test_a_lock_lost_mid_operation_cannot_let_two_writers_drain_a_wallet(
    db, redis_client, monkeypatch
):
    wallet, outcome = debit_past_a_lost_lock(
        db, redis_client, monkeypatch, stale_amount=100, other_amount=100
    )

    assert isinstance(outcome, InsufficientFunds)
    assert account_state(db, wallet) == {"balance": 0, "held": 0, "available": 0}
    assert postings_total(db, wallet) == 0
    assert_ledger_healthy(db)


def test_a_lock_lost_mid_operation_loses_no_update(db, redis_client, monkeypatch):
    wallet, outcome = debit_past_a_lost_lock(
        db, redis_client, monkeypatch, stale_amount=30, other_amount=50
    )

    assert outcome.replayed is False
    assert account_state(db, wallet)["balance"] == 20
    assert postings_total(db, wallet) == 20
    # The stale writer's increment applied to the true balance, which its journal line shows.
    entry = db.entries.find_one({"key": outcome.key})
    (posting,) = [p for p in entry["postings"] if p["account"] == wallet]
    assert int(posting["balanceAfter"]) == 20
    assert_ledger_healthy(db)


def test_a_hold_whose_lock_was_lost_cannot_be_captured_twice(db, redis_client, monkeypatch):
    short_lock = Ledger(db, redis_client, lock_timeout=0.3)
    other = Ledger(db, redis_client)
    wallet = funded_wallet(other, 1_000)
    hold = other.hold(new_key(), wallet, 400, in_minutes(60))
    # Opened up front: a stalled first capture would otherwise hold its uncommitted
    # insert of the revenue account, and the other capture would (rightly) be busy.
    open_account(db, system_account_id(SystemAccount.PLATFORM_REVENUE, "NGN"), "NGN")
    stale = StaleWriter(monkeypatch)

    stale.start(lambda: short_lock.capture(new_key("stale"), hold.hold_id, 400))
    wait_for_lock_to_expire(redis_client, wallet)
    other.capture(new_key("other"), hold.hold_id, 300)
    outcome = stale.finish()

    assert isinstance(outcome, HoldNotOpen)
    assert account_state(db, wallet) == {"balance": 700, "held": 0, "available": 700}
    assert_ledger_healthy(db)


# ---- the server's faults, injected with SecantusDB's configureFailPoint ---------------

FAULTY_CLIENT = "ledger-fault-test"  # failpoints fire only for this client's commands
_FAILPOINT_OFF = {"configureFailPoint": "failCommand", "mode": "off"}
ELECTION_SECONDS = 8.0


@pytest.fixture()
def faulty_db(servers, db):
    """The test database through a client of its own, the one failpoints are scoped to."""
    client = pymongo.MongoClient(servers["database_url"], appname=FAULTY_CLIENT)
    yield client[db.name]
    client.close()


@contextmanager
def failpoint(db, mode: Any, data: dict[str, Any]) -> Iterator[None]:
    """`failCommand` on the server for FAULTY_CLIENT's commands, off again afterwards."""
    admin = db.client.admin
    scoped = {**data, "appName": FAULTY_CLIENT}
    admin.command({"configureFailPoint": "failCommand", "mode": mode, "data": scoped})
    try:
        yield
    finally:
        admin.command(_FAILPOINT_OFF)


# The commit applies, and its answer says the majority never confirmed it in time: the
# driver raises with the UnknownTransactionCommitResult label, as after a failover.
COMMIT_APPLIED_ANSWER_LOST = {
    "failCommands": ["commitTransaction"],
    "writeConcernError": {
        "code": 64,
        "codeName": "WriteConcernFailed",
        "errmsg": "waiting for replication timed out",
        "errInfo": {"wtimeout": True},
    },
}


@pytest.mark.parametrize("retry_seconds", [0.0, 15.0])
def test_a_commit_applied_with_its_answer_lost_returns_its_result_once(
    db, faulty_db, redis_client, retry_seconds
):
    """With no retry left (0 s) the ledger used to answer 'busy' for a debit that had
    applied; with retries, its retry met its own entry and called it a replay. It looks
    the entry up by its key and answers the debit's own result, once."""
    wallet, key = funded_wallet(Ledger(db, redis_client), 1_000), new_key("unknown")
    ledger = Ledger(faulty_db, redis_client, retry_seconds=retry_seconds)

    with failpoint(db, {"times": 1}, COMMIT_APPLIED_ANSWER_LOST):
        first = ledger.debit(key, wallet, 300)
    again = ledger.debit(key, wallet, 300)

    assert first.replayed is False
    assert (again.replayed, again.entry_id) == (True, first.entry_id)
    assert account_state(db, wallet)["balance"] == 700
    assert db.entries.count_documents({"key": key}) == 1
    assert_ledger_healthy(db)


def test_writes_failing_transiently_for_seconds_delay_a_debit_without_failing_it(
    db, faulty_db, redis_client
):
    """Every write fails with a transient transaction error, as around an election, until
    the failpoint is switched off 8 seconds later: the ledger keeps retrying within its
    budget and applies the debit once. It used to give up after 8 quick attempts (about
    a second). (Not 'not primary': the driver then waits for the server's next
    heartbeat, and the embedded server answers it only after 10 s.)"""
    wallet, key = funded_wallet(Ledger(db, redis_client), 1_000), new_key("election")
    ledger = Ledger(faulty_db, redis_client)
    election = {
        "failCommands": ["insert"],
        "errorCode": 112,  # WriteConflict
        "errorLabels": ["TransientTransactionError"],
    }

    with failpoint(db, "alwaysOn", election):
        elected = threading.Timer(ELECTION_SECONDS, db.client.admin.command, args=[_FAILPOINT_OFF])
        elected.start()
        result = ledger.debit(key, wallet, 300)
        elected.join()

    assert result.replayed is False
    assert account_state(db, wallet)["balance"] == 700
    assert db.entries.count_documents({"key": key}) == 1
    assert_ledger_healthy(db)


def test_a_wallet_busy_past_the_retries_is_a_warning_and_counted_not_an_error(db, redis_client):
    """The caller retries a busy answer (a task with backoff, a client on its 409), so
    running out of the ledger's own retries is logged as a warning and counted."""
    configure_logging(json=True, level="INFO")  # the services' own lines, as they write them
    ledger = Ledger(db, redis_client, lock_wait=5.0, retry_seconds=0.5)
    wallet, key = funded_wallet(ledger, 1_000), new_key("busy")
    before = REGISTRY.get_sample_value("ledger_busy_total", {"op": "debit"}) or 0.0

    # Another writer's open transaction owns the wallet's document for the whole call.
    with db.client.start_session() as session, session.start_transaction():
        db[ACCOUNTS].update_one({"_id": wallet}, {"$set": {"busyTest": 1}}, session=session)
        with capture_logs() as logs, pytest.raises(Conflict) as refused:
            ledger.debit(key, wallet, 300)
        session.abort_transaction()

    assert is_busy(refused.value)
    [line] = [line for line in logs.lines() if line.get("event") == "ledger_retries_exhausted"]
    assert line["level"] == "warning", line
    assert REGISTRY.get_sample_value("ledger_busy_total", {"op": "debit"}) == before + 1
    assert nothing_recorded_for(db, key)
