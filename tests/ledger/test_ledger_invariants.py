"""The incremental invariant check (`check_recent`): it reads only the entries since its
last run and the accounts they touched, and still finds each broken rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import Int64, ObjectId

from services.manage import report_invariants
from shared.indexes import ensure_indexes
from shared.ledger import Ledger, check_recent
from shared.ledger.invariants import CHECKPOINTS
from tests.support.ledger_support import funded_wallet, in_minutes, new_key


@pytest.fixture()
def scratch(db):
    """A database of its own, so broken states break nothing else."""
    name = f"ledger_recent_{ObjectId()}"
    ensure_indexes(db.client[name])
    yield db.client[name]
    db.client.drop_database(name)


@pytest.fixture()
def ledger(scratch, redis_client) -> Ledger:
    return Ledger(scratch, redis_client)


def rules(check) -> set[tuple[str, str]]:
    return {(v.rule, v.subject) for v in check.violations}


def some_traffic(ledger: Ledger) -> str:
    """A wallet after a credit, a debit, a hold captured in part and an open hold."""
    wallet = funded_wallet(ledger, 1_000)
    ledger.debit(new_key(), wallet, 100)
    hold = ledger.hold(new_key(), wallet, 300, in_minutes(5))
    ledger.capture(new_key(), hold.hold_id, 200, account=wallet)
    ledger.hold(new_key(), wallet, 50, in_minutes(5))
    return wallet


def test_a_healthy_ledger_passes_and_a_second_run_reads_only_what_is_new(scratch, ledger):
    some_traffic(ledger)

    first = check_recent(scratch, settle_seconds=0)
    nothing_new = check_recent(scratch, settle_seconds=0)
    some_traffic(ledger)
    after_more = check_recent(scratch, settle_seconds=0)

    assert (first.violations, first.entries, first.caught_up) == ([], 5, True)
    assert (nothing_new.violations, nothing_new.entries) == ([], 0)
    assert (after_more.violations, after_more.entries) == ([], 5)


def test_entries_younger_than_the_settle_time_wait_for_a_later_run(scratch, ledger):
    some_traffic(ledger)

    assert check_recent(scratch, settle_seconds=3600).entries == 0
    assert check_recent(scratch, settle_seconds=0).entries == 5


def test_runs_go_on_batch_by_batch(scratch, redis_client):
    moments = iter(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s) for s in range(100))
    ledger = Ledger(scratch, redis_client, clock=lambda: next(moments))
    some_traffic(ledger)

    runs = [check_recent(scratch, settle_seconds=0, batch=2) for _ in range(4)]

    # A full batch stops before its last instant: one entry a run, never one twice.
    assert [(r.entries, r.caught_up) for r in runs] == [(1, False)] * 4
    last = check_recent(scratch, settle_seconds=0)
    assert (last.entries, last.caught_up) == (1, True)
    assert all(r.violations == [] for r in [*runs, last])


def test_a_balance_changed_behind_the_ledger_is_found(scratch, ledger):
    wallet = some_traffic(ledger)
    check_recent(scratch, settle_seconds=0)
    scratch.accounts.update_one({"_id": wallet}, {"$inc": {"balance": 1, "available": 1}})
    ledger.credit(new_key(), wallet, 10)  # the check looks at accounts entries touched

    found = check_recent(scratch, settle_seconds=0)

    # The credit's journal line carries the changed balance, one more than its postings.
    assert [v.as_dict() for v in found.violations] == [
        {"rule": "balance_equals_postings", "subject": wallet, "expected": 710, "actual": 711}
    ]


def test_a_balance_changed_after_its_last_entry_is_found(scratch, ledger):
    wallet = some_traffic(ledger)
    scratch.accounts.update_one({"_id": wallet}, {"$inc": {"balance": 1, "available": 1}})

    found = check_recent(scratch, settle_seconds=0)

    assert ("balance_equals_journal", wallet) in rules(found)


def test_an_unbalanced_entry_is_found(scratch, ledger):
    wallet = some_traffic(ledger)
    entry = scratch.entries.find_one({"accounts": wallet, "kind": "debit"})
    scratch.entries.update_one({"_id": entry["_id"]}, {"$set": {"postings.1.amount": Int64(99)}})

    found = check_recent(scratch, settle_seconds=0)

    assert ("entry_balances", str(entry["_id"])) in rules(found)


def test_held_that_open_holds_do_not_explain_is_found(scratch, ledger):
    wallet = some_traffic(ledger)
    scratch.holds.update_one({"account": wallet, "status": "open"}, {"$inc": {"amount": 5}})

    found = check_recent(scratch, settle_seconds=0)

    assert ("held_equals_open_holds", wallet) in rules(found)


def test_checkpoints_are_kept_per_account(scratch, ledger):
    wallet = some_traffic(ledger)
    check_recent(scratch, settle_seconds=0)

    checkpoint = scratch[CHECKPOINTS].find_one({"_id": wallet})

    assert (checkpoint["balance"], checkpoint["held"]) == (700, 50)


def test_the_command_reports_and_exits_1_on_a_violation(scratch, ledger, capsys):
    wallet = some_traffic(ledger)
    assert report_invariants(scratch, full=False, settle_seconds=0) == 0
    assert report_invariants(scratch, full=True, settle_seconds=0) == 0
    scratch.accounts.update_one({"_id": wallet}, {"$inc": {"held": 1, "available": -1}})

    assert report_invariants(scratch, full=True, settle_seconds=0) == 1
    assert "held_equals_open_holds" in capsys.readouterr().out


def test_an_account_whose_history_predates_the_check_starts_from_its_postings(
    scratch, ledger, redis_client
):
    check_recent(scratch, settle_seconds=0)  # the watermark is now
    last_year = datetime.now(UTC) - timedelta(days=365)
    restored = Ledger(scratch, redis_client, clock=lambda: last_year)
    wallet = funded_wallet(restored, 5_000)  # behind the watermark: never read by a run
    ledger.debit(new_key(), wallet, 1_000)

    found = check_recent(scratch, settle_seconds=0)

    assert (found.violations, found.entries) == ([], 1)
    assert scratch[CHECKPOINTS].find_one({"_id": wallet})["balance"] == 4_000
