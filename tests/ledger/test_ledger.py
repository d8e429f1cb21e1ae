"""Every ledger operation and every rejection, against the real servers.

Each test uses wallets no other test touches; after each test the invariants must hold
over the whole database (every other test's money included).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from bson import Int64, ObjectId

from shared.errors import Conflict, InvalidRequest, NotFound
from shared.ledger import (
    AccountBusy,
    Credit,
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientFunds,
    Ledger,
    Posting,
    SystemAccount,
    check_invariants,
    system_account_id,
)
from shared.ledger.locks import FairLock, lock_key
from shared.ledger.reads import LedgerReads
from tests.support.ledger_support import (
    account_state,
    assert_ledger_healthy,
    funded_wallet,
    in_minutes,
    new_key,
    new_wallet,
    postings_total,
)

CLEARING_NGN = system_account_id(SystemAccount.GATEWAY_CLEARING, "NGN")
REVENUE_NGN = system_account_id(SystemAccount.PLATFORM_REVENUE, "NGN")
BAD_AMOUNTS = [0, -1, -500, 1.5, 100.0, Decimal("1"), "100", True, None]


@pytest.fixture(params=[False, True], ids=["update-then-read", "find-and-modify"])
def ledger(db, redis_client, request) -> Ledger:
    """Both ways a write learns its result: the embedded server uses the first, MongoDB
    the second (shared.queries.update_and_read)."""
    return Ledger(db, redis_client, find_and_modify=request.param)


@pytest.fixture(autouse=True)
def invariants_hold_after_each_test(db):
    yield
    assert_ledger_healthy(db)


def nothing_recorded_for(db, key: str) -> bool:
    return (
        db.entries.count_documents({"key": key}) == 0
        and db.holds.count_documents({"key": key}) == 0
    )


# ---- credit ---------------------------------------------------------------------------


def test_credit_adds_to_the_wallet_and_writes_a_balanced_entry(db, ledger):
    wallet = new_wallet()
    clearing_before = account_state(db, CLEARING_NGN)["balance"]

    result = ledger.credit(new_key(), wallet, 5_000_00, reference="ref-1", description="top up")

    assert result.replayed is False
    assert account_state(db, wallet) == {"balance": 5_000_00, "held": 0, "available": 5_000_00}
    entry = db.entries.find_one({"_id": ObjectId(result.entry_id)})
    assert entry["kind"] == "credit"
    assert entry["currency"] == "NGN"
    assert {(p["account"], int(p["amount"])) for p in entry["postings"]} == {
        (CLEARING_NGN, -5_000_00),
        (wallet, 5_000_00),
    }
    assert all(isinstance(p["amount"], Int64) for p in entry["postings"])
    (line,) = LedgerReads(db).history(wallet, 10)
    assert (line.type, line.amount, line.balance_after) == ("credit", 5_000_00, 5_000_00)
    assert (line.reference, line.description) == ("ref-1", "top up")
    # The clearing account is a system account: it may (and here does) go negative.
    assert account_state(db, CLEARING_NGN)["balance"] <= clearing_before - 5_000_00


def test_balances_are_stored_as_int64(db, ledger):
    wallet = funded_wallet(ledger, 123)
    document = db.accounts.find_one({"_id": wallet})
    fields = ("balance", "held", "available", "version")
    assert all(isinstance(document[field], Int64) for field in fields)


def test_repeating_a_credit_returns_the_first_result_and_applies_once(db, ledger):
    wallet, key = new_wallet(), new_key()
    first = ledger.credit(key, wallet, 700)

    again = ledger.credit(key, wallet, 700)

    assert again.replayed is True
    assert again.entry_id == first.entry_id
    assert account_state(db, wallet)["balance"] == 700
    assert db.entries.count_documents({"key": key}) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 701},
        {"account": "other wallet"},
        {"source": SystemAccount.PLATFORM_REVENUE},
    ],
)
def test_the_same_key_with_other_parameters_is_a_conflict(db, ledger, change):
    wallet, key = new_wallet(), new_key()
    ledger.credit(key, wallet, 700)
    call = {"account": wallet, "amount": 700, **change}
    if call["account"] == "other wallet":
        call["account"] = new_wallet()

    with pytest.raises(IdempotencyConflict):
        ledger.credit(key, **call)

    assert account_state(db, wallet)["balance"] == 700
    if call["account"] != wallet:
        assert account_state(db, call["account"])["balance"] == 0


def test_a_key_used_by_one_operation_cannot_be_reused_by_another(db, ledger):
    wallet, key = funded_wallet(ledger, 1_000), new_key()
    ledger.debit(key, wallet, 100)

    with pytest.raises(IdempotencyConflict):
        ledger.hold(key, wallet, 100, in_minutes(5))

    assert account_state(db, wallet) == {"balance": 900, "held": 0, "available": 900}


# ---- debit ----------------------------------------------------------------------------


def test_debit_takes_from_the_wallet(db, ledger):
    wallet = funded_wallet(ledger, 1_000)

    result = ledger.debit(new_key(), wallet, 1_000, destination=SystemAccount.PLATFORM_REVENUE)

    assert account_state(db, wallet)["balance"] == 0
    assert {(p.account, p.amount) for p in result.postings} == {
        (wallet, -1_000),
        (system_account_id(SystemAccount.PLATFORM_REVENUE, "NGN"), 1_000),
    }
    (debit,) = LedgerReads(db).history(wallet, 10, kind="debit")
    assert (debit.amount, debit.balance_after) == (1_000, 0)


def test_debit_beyond_the_balance_is_refused_and_writes_nothing(db, ledger):
    wallet, key = funded_wallet(ledger, 999), new_key()

    with pytest.raises(InsufficientFunds):
        ledger.debit(key, wallet, 1_000)

    assert account_state(db, wallet)["balance"] == 999
    assert nothing_recorded_for(db, key)


def test_a_refused_key_is_not_burnt_and_applies_once_funds_arrive(db, ledger):
    wallet, key = funded_wallet(ledger, 500), new_key()
    with pytest.raises(InsufficientFunds):
        ledger.debit(key, wallet, 800)
    ledger.credit(new_key(), wallet, 300)

    ledger.debit(key, wallet, 800)

    assert account_state(db, wallet)["balance"] == 0


def test_debit_of_a_wallet_never_credited_is_refused(db, ledger):
    wallet = new_wallet()
    with pytest.raises(InsufficientFunds):
        ledger.debit(new_key(), wallet, 1)
    assert account_state(db, wallet)["balance"] == 0


# ---- amounts and currencies -----------------------------------------------------------


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
@pytest.mark.parametrize("operation", ["credit", "debit"])
def test_bad_amounts_are_rejected_by_credit_and_debit(db, ledger, operation, amount):
    wallet, key = funded_wallet(ledger, 10_000), new_key()

    with pytest.raises(InvalidRequest):
        getattr(ledger, operation)(key, wallet, amount)

    assert account_state(db, wallet)["balance"] == 10_000
    assert nothing_recorded_for(db, key)


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_bad_amounts_are_rejected_by_hold(db, ledger, amount):
    wallet, key = funded_wallet(ledger, 10_000), new_key()

    with pytest.raises(InvalidRequest):
        ledger.hold(key, wallet, amount, in_minutes(5))

    assert account_state(db, wallet)["held"] == 0
    assert nothing_recorded_for(db, key)


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_bad_amounts_are_rejected_by_extend_hold(db, ledger, amount):
    wallet = funded_wallet(ledger, 10_000)
    hold = ledger.hold(new_key(), wallet, 100, in_minutes(5))

    with pytest.raises(InvalidRequest):
        ledger.extend_hold(new_key(), hold.hold_id, amount, in_minutes(10))

    assert account_state(db, wallet)["held"] == 100


@pytest.mark.parametrize("amount", [-1, 1.5, 50.0, Decimal("50"), "50", True, None])
def test_bad_amounts_are_rejected_by_capture(db, ledger, amount):
    wallet, key = funded_wallet(ledger, 10_000), new_key()
    hold = ledger.hold(new_key(), wallet, 100, in_minutes(5))

    with pytest.raises(InvalidRequest):
        ledger.capture(key, hold.hold_id, amount)

    assert account_state(db, wallet) == {"balance": 10_000, "held": 100, "available": 9_900}
    assert db.holds.find_one({"_id": hold.hold_id})["status"] == "open"
    assert nothing_recorded_for(db, key)


@pytest.mark.parametrize(
    "destinations",
    [
        [("a", 60), ("b", 30)],  # adds up to less than the amount
        [("a", 60), ("b", 60)],  # to more
        [("a", 120), ("b", -20)],  # adds up, with a negative share
        [("a", 99.5), ("b", 0.5)],  # adds up, in floats
    ],
)
def test_capture_destinations_must_be_integer_shares_adding_up(db, ledger, destinations):
    wallet = funded_wallet(ledger, 1_000)
    hold = ledger.hold(new_key(), wallet, 100, in_minutes(5))
    accounts = {"a": new_wallet(), "b": new_wallet()}

    with pytest.raises(InvalidRequest):
        ledger.capture(new_key(), hold.hold_id, 100, [(accounts[d], a) for d, a in destinations])

    assert account_state(db, wallet)["held"] == 100
    assert all(account_state(db, a)["balance"] == 0 for a in accounts.values())


def test_a_transfer_between_currencies_is_rejected_and_writes_nothing(db, ledger):
    naira, key = funded_wallet(ledger, 1_000, "NGN"), new_key()
    dollars = new_wallet("USD")

    with pytest.raises(InvalidRequest):
        ledger.transfer(key, naira, [(dollars, 100)])

    assert account_state(db, naira)["balance"] == 1_000
    assert account_state(db, dollars)["balance"] == 0
    assert nothing_recorded_for(db, key)


def test_a_capture_into_another_currency_is_rejected(db, ledger):
    naira = funded_wallet(ledger, 1_000, "NGN")
    hold = ledger.hold(new_key(), naira, 100, in_minutes(5))

    with pytest.raises(InvalidRequest):
        ledger.capture(new_key(), hold.hold_id, 100, [(new_wallet("USD"), 100)])

    assert account_state(db, naira) == {"balance": 1_000, "held": 100, "available": 900}


def test_usd_wallets_balance_against_usd_system_accounts(db, ledger):
    dollars = funded_wallet(ledger, 2_500, "USD")
    clearing_usd = system_account_id(SystemAccount.GATEWAY_CLEARING, "USD")
    (line,) = LedgerReads(db).history(dollars, 10)
    entry = db.entries.find_one({"_id": line.id})
    assert account_state(db, dollars)["balance"] == 2_500
    assert entry["currency"] == "USD"
    assert {(p["account"], p["amount"]) for p in entry["postings"]} == {
        (clearing_usd, -2_500),
        (dollars, 2_500),
    }


# ---- transfer and post ----------------------------------------------------------------


def test_transfer_splits_one_source_over_several_destinations(db, ledger):
    payer = funded_wallet(ledger, 10_000)
    payee = new_wallet()

    result = ledger.transfer(new_key(), payer, [(payee, 7_000), (REVENUE_NGN, 2_000)])

    assert account_state(db, payer)["balance"] == 1_000
    assert account_state(db, payee)["balance"] == 7_000
    assert sum(p.amount for p in result.postings) == 0
    entry = db.entries.find_one({"_id": ObjectId(result.entry_id)})
    assert len(entry["postings"]) == 3


def test_transfer_beyond_the_source_balance_is_refused(db, ledger):
    payer, payee, key = funded_wallet(ledger, 5_000), new_wallet(), new_key()

    with pytest.raises(InsufficientFunds):
        ledger.transfer(key, payer, [(payee, 4_000), (REVENUE_NGN, 1_001)])

    assert account_state(db, payer)["balance"] == 5_000
    assert account_state(db, payee)["balance"] == 0
    assert nothing_recorded_for(db, key)


@pytest.mark.parametrize("shares", [[], [0], [100, 0], [100, -50], [True], [2.5]])
def test_transfer_shares_must_be_positive_integers(db, ledger, shares):
    payer, key = funded_wallet(ledger, 5_000), new_key()
    payees = [new_wallet() for _ in shares]

    with pytest.raises(InvalidRequest):
        ledger.transfer(key, payer, list(zip(payees, shares, strict=True)))

    assert account_state(db, payer)["balance"] == 5_000
    assert nothing_recorded_for(db, key)


def test_post_writes_any_balanced_entry(db, ledger):
    first, second = funded_wallet(ledger, 300), funded_wallet(ledger, 300)

    ledger.post(
        new_key(),
        [Posting(first, -300), Posting(second, -200), Posting(REVENUE_NGN, 500)],
        kind="sweep",
    )

    assert account_state(db, first)["balance"] == 0
    assert account_state(db, second)["balance"] == 100


@pytest.mark.parametrize(
    "amounts",
    [[100], [100, -99], [100, -100.0], [1.5, -1.5], [0, 0], [True, -1]],
)
def test_post_refuses_entries_that_do_not_balance_in_integers(db, ledger, amounts):
    wallet, key = funded_wallet(ledger, 1_000), new_key()
    accounts = [wallet, REVENUE_NGN, CLEARING_NGN]

    with pytest.raises(InvalidRequest):
        ledger.post(key, [Posting(accounts[i], a) for i, a in enumerate(amounts)])

    assert nothing_recorded_for(db, key)


# ---- holds ----------------------------------------------------------------------------


def test_a_hold_reserves_money_and_counts_as_spent(db, ledger):
    wallet = funded_wallet(ledger, 1_000)

    hold = ledger.hold(new_key(), wallet, 600, in_minutes(5), reference="call-1")

    assert (hold.account, hold.amount, hold.status) == (wallet, 600, "open")
    assert account_state(db, wallet) == {"balance": 1_000, "held": 600, "available": 400}
    with pytest.raises(InsufficientFunds):
        ledger.debit(new_key(), wallet, 401)
    with pytest.raises(InsufficientFunds):
        ledger.hold(new_key(), wallet, 401, in_minutes(5))
    ledger.debit(new_key(), wallet, 400)
    assert account_state(db, wallet) == {"balance": 600, "held": 600, "available": 0}


def test_a_hold_beyond_available_is_refused_and_writes_nothing(db, ledger):
    wallet, key = funded_wallet(ledger, 100), new_key()

    with pytest.raises(InsufficientFunds):
        ledger.hold(key, wallet, 101, in_minutes(5))

    assert account_state(db, wallet)["held"] == 0
    assert nothing_recorded_for(db, key)


def test_a_hold_says_what_the_wallet_has_left_available(db, ledger):
    wallet = funded_wallet(ledger, 1_000)
    ledger.hold(new_key(), wallet, 100, in_minutes(5))

    hold = ledger.hold(new_key(), wallet, 300, in_minutes(5))

    assert hold.available == 600 == account_state(db, wallet)["available"]


def test_a_restricted_wallet_refuses_a_hold_that_asks_so(db, ledger):
    wallet, key = funded_wallet(ledger, 1_000), new_key()
    ledger.set_restricted(wallet, True, "test")

    with pytest.raises(InsufficientFunds):
        ledger.hold(key, wallet, 300, in_minutes(5), refuse_restricted=True)

    assert account_state(db, wallet)["held"] == 0
    assert nothing_recorded_for(db, key)
    assert ledger.hold(new_key(), wallet, 300, in_minutes(5)).status == "open"  # others may


def test_repeating_a_hold_returns_the_same_hold(db, ledger):
    wallet, key, expires = funded_wallet(ledger, 1_000), new_key(), in_minutes(5)
    first = ledger.hold(key, wallet, 300, expires)

    again = ledger.hold(key, wallet, 300, expires)

    assert again.replayed is True
    assert again.hold_id == first.hold_id
    assert account_state(db, wallet)["held"] == 300
    assert db.holds.count_documents({"account": wallet}) == 1


def test_a_hold_takes_the_callers_hold_id(db, ledger):
    wallet, hold_id = funded_wallet(ledger, 1_000), f"call:{ObjectId()}"

    result = ledger.hold(new_key(), wallet, 300, in_minutes(5), hold_id=hold_id)

    assert result.hold_id == hold_id
    assert db.holds.find_one({"_id": hold_id})["status"] == "open"


def test_a_hold_id_taken_by_another_hold_is_a_conflict(db, ledger):
    wallet, hold_id, key = funded_wallet(ledger, 1_000), f"call:{ObjectId()}", new_key()
    ledger.hold(new_key(), wallet, 300, in_minutes(5), hold_id=hold_id)

    with pytest.raises(Conflict):
        ledger.hold(key, wallet, 200, in_minutes(5), hold_id=hold_id)

    assert account_state(db, wallet)["held"] == 300
    assert nothing_recorded_for(db, key)


def test_a_repeated_hold_with_another_amount_is_a_conflict(db, ledger):
    wallet, key, expires = funded_wallet(ledger, 1_000), new_key(), in_minutes(5)
    ledger.hold(key, wallet, 300, expires)

    with pytest.raises(IdempotencyConflict):
        ledger.hold(key, wallet, 301, expires)

    assert account_state(db, wallet)["held"] == 300


def test_extend_hold_adds_to_it_and_pushes_its_expiry(db, ledger):
    wallet = funded_wallet(ledger, 1_000)
    hold = ledger.hold(new_key(), wallet, 300, in_minutes(5))
    later = in_minutes(10).replace(microsecond=0)

    extended = ledger.extend_hold(new_key(), hold.hold_id, 200, later)

    assert (extended.hold_id, extended.amount, extended.status) == (hold.hold_id, 500, "open")
    assert account_state(db, wallet) == {"balance": 1_000, "held": 500, "available": 500}
    stored = db.holds.find_one({"_id": hold.hold_id})
    assert int(stored["amount"]) == 500
    assert stored["expiresAt"] == later


def test_repeating_an_extension_applies_it_once(db, ledger):
    wallet, key, later = funded_wallet(ledger, 1_000), new_key(), in_minutes(10)
    hold = ledger.hold(new_key(), wallet, 300, in_minutes(5))
    ledger.extend_hold(key, hold.hold_id, 200, later)

    again = ledger.extend_hold(key, hold.hold_id, 200, later)

    assert (again.replayed, again.amount) == (True, 500)
    assert account_state(db, wallet)["held"] == 500


def test_extending_beyond_available_is_refused(db, ledger):
    wallet = funded_wallet(ledger, 1_000)
    hold = ledger.hold(new_key(), wallet, 300, in_minutes(5))

    with pytest.raises(InsufficientFunds):
        ledger.extend_hold(new_key(), hold.hold_id, 701, in_minutes(10))

    assert account_state(db, wallet)["held"] == 300
    assert int(db.holds.find_one({"_id": hold.hold_id})["amount"]) == 300


def test_capture_below_the_hold_releases_the_rest(db, ledger):
    wallet = funded_wallet(ledger, 1_000)
    hold = ledger.hold(new_key(), wallet, 600, in_minutes(5))
    revenue_before = account_state(db, REVENUE_NGN)["balance"]

    result = ledger.capture(new_key(), hold.hold_id, 250)

    assert account_state(db, wallet) == {"balance": 750, "held": 0, "available": 750}
    assert account_state(db, REVENUE_NGN)["balance"] - revenue_before == 250
    assert {(p.account, p.amount) for p in result.postings} == {
        (wallet, -250),
        (REVENUE_NGN, 250),
    }
    stored = db.holds.find_one({"_id": hold.hold_id})
    assert (stored["status"], int(stored["captured"])) == ("captured", 250)
    entry = db.entries.find_one({"_id": ObjectId(result.entry_id)})
    assert (entry["kind"], entry["holdId"]) == ("capture", hold.hold_id)


def test_capture_of_the_whole_hold(db, ledger):
    wallet = funded_wallet(ledger, 1_000)
    hold = ledger.hold(new_key(), wallet, 1_000, in_minutes(5))

    ledger.capture(new_key(), hold.hold_id, 1_000)

    assert account_state(db, wallet) == {"balance": 0, "held": 0, "available": 0}


def test_capture_splits_over_several_destinations(db, ledger):
    caller, callee = funded_wallet(ledger, 1_000), new_wallet()
    hold = ledger.hold(new_key(), caller, 600, in_minutes(5))
    revenue_before = account_state(db, REVENUE_NGN)["balance"]

    ledger.capture(new_key(), hold.hold_id, 500, [(callee, 450), (REVENUE_NGN, 50)])

    assert account_state(db, caller) == {"balance": 500, "held": 0, "available": 500}
    assert account_state(db, callee)["balance"] == 450
    assert account_state(db, REVENUE_NGN)["balance"] - revenue_before == 50


def test_capture_of_nothing_releases_the_whole_hold_without_an_entry(db, ledger):
    wallet = funded_wallet(ledger, 1_000)
    hold = ledger.hold(new_key(), wallet, 600, in_minutes(5))

    result = ledger.capture(new_key(), hold.hold_id, 0)

    assert (result.entry_id, result.postings) == (None, ())
    assert account_state(db, wallet) == {"balance": 1_000, "held": 0, "available": 1_000}
    assert db.holds.find_one({"_id": hold.hold_id})["status"] == "captured"


def test_capture_above_the_hold_is_refused(db, ledger):
    wallet, key = funded_wallet(ledger, 1_000), new_key()
    hold = ledger.hold(new_key(), wallet, 600, in_minutes(5))

    with pytest.raises(InvalidRequest):
        ledger.capture(key, hold.hold_id, 601)

    assert account_state(db, wallet) == {"balance": 1_000, "held": 600, "available": 400}
    assert db.holds.find_one({"_id": hold.hold_id})["status"] == "open"
    assert nothing_recorded_for(db, key)


def test_repeating_a_capture_returns_the_first_result(db, ledger):
    wallet, key = funded_wallet(ledger, 1_000), new_key()
    hold = ledger.hold(new_key(), wallet, 600, in_minutes(5))
    first = ledger.capture(key, hold.hold_id, 250)

    again = ledger.capture(key, hold.hold_id, 250)

    assert (again.replayed, again.entry_id) == (True, first.entry_id)
    assert account_state(db, wallet)["balance"] == 750
    with pytest.raises(IdempotencyConflict):
        ledger.capture(key, hold.hold_id, 300)


def test_release_gives_the_hold_back(db, ledger):
    wallet = funded_wallet(ledger, 1_000)
    hold = ledger.hold(new_key(), wallet, 600, in_minutes(5))

    result = ledger.release(new_key(), hold.hold_id)

    assert result.status == "released"
    assert account_state(db, wallet) == {"balance": 1_000, "held": 0, "available": 1_000}
    assert db.holds.find_one({"_id": hold.hold_id})["status"] == "released"


def test_repeating_a_release_returns_the_first_result(db, ledger):
    wallet, key = funded_wallet(ledger, 1_000), new_key()
    hold = ledger.hold(new_key(), wallet, 600, in_minutes(5))
    ledger.release(key, hold.hold_id)

    again = ledger.release(key, hold.hold_id)

    assert (again.replayed, again.status) == (True, "released")
    assert account_state(db, wallet)["held"] == 0


@pytest.mark.parametrize("closing", ["capture", "release", "expire"])
def test_a_closed_hold_cannot_be_captured_released_or_extended(db, ledger, closing):
    wallet = funded_wallet(ledger, 1_000)
    hold = ledger.hold(new_key(), wallet, 600, in_minutes(5))
    close = {
        "capture": lambda: ledger.capture(new_key(), hold.hold_id, 100),
        "release": lambda: ledger.release(new_key(), hold.hold_id),
        "expire": lambda: ledger.release(new_key(), hold.hold_id, status="expired"),
    }
    close[closing]()
    state = account_state(db, wallet)

    with pytest.raises(HoldNotOpen):
        ledger.capture(new_key(), hold.hold_id, 100)
    with pytest.raises(HoldNotOpen):
        ledger.release(new_key(), hold.hold_id)
    with pytest.raises(HoldNotOpen):
        ledger.extend_hold(new_key(), hold.hold_id, 100, in_minutes(5))

    assert account_state(db, wallet) == state


@pytest.mark.parametrize("operation", ["capture", "release", "extend_hold"])
def test_an_unknown_hold_is_not_found(ledger, operation):
    calls = {
        "capture": lambda h: ledger.capture(new_key(), h, 100),
        "release": lambda h: ledger.release(new_key(), h),
        "extend_hold": lambda h: ledger.extend_hold(new_key(), h, 100, in_minutes(5)),
    }
    with pytest.raises(NotFound):
        calls[operation](str(ObjectId()))


def test_expire_holds_releases_only_holds_past_their_time(db, ledger):
    wallet = funded_wallet(ledger, 1_000)
    now = datetime.now(UTC)
    due = ledger.hold(new_key(), wallet, 100, now - timedelta(seconds=1))
    exactly_due = ledger.hold(new_key(), wallet, 200, now)
    not_due = ledger.hold(new_key(), wallet, 300, now + timedelta(minutes=5))
    due_in_the_database = db.holds.count_documents({"status": "open", "expiresAt": {"$lte": now}})

    expired = ledger.expire_holds(now)

    assert expired == due_in_the_database
    statuses = {h["_id"]: h["status"] for h in db.holds.find({"account": wallet})}
    assert statuses == {
        due.hold_id: "expired",
        exactly_due.hold_id: "expired",
        not_due.hold_id: "open",
    }
    assert account_state(db, wallet) == {"balance": 1_000, "held": 300, "available": 700}
    assert ledger.expire_holds(now) == 0


def test_expire_holds_uses_the_ledgers_clock(db, redis_client):
    wallet = new_wallet()
    future = datetime.now(UTC) + timedelta(days=3650)
    ledger = Ledger(db, redis_client, clock=lambda: future)
    ledger.credit(new_key(), wallet, 1_000)
    hold = ledger.hold(new_key(), wallet, 100, future - timedelta(days=1))

    assert ledger.expire_holds() >= 1

    assert db.holds.find_one({"_id": hold.hold_id})["status"] == "expired"
    assert account_state(db, wallet)["held"] == 0


# ---- credits committed together -------------------------------------------------------


def test_credit_many_commits_each_credit_with_its_own_entry(db, ledger):
    wallet, other = new_wallet(), new_wallet()
    credits = [Credit(new_key(), wallet, 500, reference="r1"), Credit(new_key(), other, 700)]
    credits.append(Credit(new_key(), wallet, 300))  # the same wallet twice in one group

    results = ledger.credit_many(credits)

    assert [r.replayed for r in results] == [False, False, False]
    assert account_state(db, wallet)["balance"] == 800
    assert account_state(db, other)["balance"] == 700
    for credit, result in zip(credits, results, strict=True):
        entry = db.entries.find_one({"key": credit.key})
        assert str(entry["_id"]) == result.entry_id and entry["kind"] == "credit"
    balances_after = [line.balance_after for line in LedgerReads(db).history(wallet, 10)]
    assert sorted(balances_after) == [500, 800]


def test_credit_many_replays_like_credit(db, ledger):
    """A group's credits are the credits `credit` would make: either replays the other."""
    wallet, keys = new_wallet(), [new_key(), new_key()]
    alone = ledger.credit(keys[0], wallet, 500)

    grouped = ledger.credit_many([Credit(keys[0], wallet, 500), Credit(keys[1], wallet, 200)])
    again = ledger.credit(keys[1], wallet, 200)

    assert grouped[0].replayed and grouped[0].entry_id == alone.entry_id
    assert not grouped[1].replayed
    assert again.replayed and again.entry_id == grouped[1].entry_id
    assert account_state(db, wallet)["balance"] == 700
    assert all(db.entries.count_documents({"key": key}) == 1 for key in keys)


def test_a_bad_item_is_refused_alone_and_the_others_apply_once(db, ledger):
    wallet, used = new_wallet(), new_key()
    ledger.credit(used, wallet, 100)
    credits = [
        Credit(new_key(), wallet, 400),
        Credit(used, wallet, 999),  # the key is taken with another amount
        Credit(new_key(), wallet, 0),  # not an amount
        Credit(new_key(), wallet, 50),
    ]

    results = ledger.credit_many(credits)

    assert isinstance(results[1], IdempotencyConflict)
    assert isinstance(results[2], InvalidRequest)
    assert not results[0].replayed and not results[3].replayed
    assert account_state(db, wallet)["balance"] == 550
    assert nothing_recorded_for(db, credits[2].key)
    assert all(db.entries.count_documents({"key": c.key}) == 1 for c in credits[:2])


def test_the_same_key_twice_in_one_group_applies_once(db, ledger):
    wallet, key = new_wallet(), new_key()

    first, second = ledger.credit_many([Credit(key, wallet, 300), Credit(key, wallet, 300)])

    assert not first.replayed and second.replayed
    assert first.entry_id == second.entry_id
    assert account_state(db, wallet)["balance"] == 300


def test_a_busy_wallet_refuses_only_its_own_credit(db, redis_client):
    ledger = Ledger(db, redis_client, lock_wait=0.2)
    busy, free = new_wallet(), new_wallet()
    holder = FairLock(redis_client, busy, timeout=10, wait=0)
    assert holder.acquire()
    try:
        results = ledger.credit_many([Credit(new_key(), busy, 100), Credit(new_key(), free, 200)])
    finally:
        holder.release()

    assert isinstance(results[0], AccountBusy)
    assert not results[1].replayed
    assert account_state(db, busy)["balance"] == 0
    assert account_state(db, free)["balance"] == 200


# ---- locks ----------------------------------------------------------------------------


def test_a_wallet_locked_by_another_writer_is_busy(db, redis_client):
    ledger = Ledger(db, redis_client, lock_wait=0.2)
    wallet, key = funded_wallet(ledger, 1_000), new_key()
    other_writer = FairLock(redis_client, wallet, timeout=30, wait=0)
    assert other_writer.acquire()
    try:
        with pytest.raises(AccountBusy):
            ledger.debit(key, wallet, 100)
    finally:
        other_writer.release()

    assert nothing_recorded_for(db, key)
    ledger.debit(key, wallet, 100)
    assert account_state(db, wallet)["balance"] == 900


def test_locks_are_released_after_success_and_failure(db, redis_client, ledger):
    wallet = funded_wallet(ledger, 1_000)
    with pytest.raises(InsufficientFunds):
        ledger.debit(new_key(), wallet, 5_000)
    ledger.debit(new_key(), wallet, 100)
    assert redis_client.exists(lock_key(wallet)) == 0


# ---- the invariant checker ------------------------------------------------------------


@pytest.fixture()
def scratch_db(db):
    """A database of its own on the same server, so broken states break nothing else."""
    name = f"ledger_invariants_{ObjectId()}"
    yield db.client[name]
    db.client.drop_database(name)


def account_doc(account: str, balance: int, held: int = 0, available: int | None = None) -> dict:
    kind = "user" if account.startswith("wallet:") else "system"
    available = balance - held if available is None else available
    document = {"_id": account, "kind": kind, "currency": "NGN", "balance": balance}
    return {**document, "held": held, "available": available}


def test_check_invariants_finds_nothing_in_a_healthy_ledger(scratch_db, redis_client):
    ledger = Ledger(scratch_db, redis_client)
    wallet = funded_wallet(ledger, 1_000)
    hold = ledger.hold(new_key(), wallet, 400, in_minutes(5))
    ledger.capture(new_key(), hold.hold_id, 100)
    ledger.hold(new_key(), wallet, 50, in_minutes(5))

    assert check_invariants(scratch_db) == []


def test_check_invariants_reports_each_broken_rule(scratch_db):
    wallet = new_wallet()
    scratch_db.accounts.insert_one(account_doc(wallet, balance=100, held=150, available=0))
    scratch_db.entries.insert_many(
        [
            {
                "postings": [
                    {"account": wallet, "amount": 90},
                    {"account": CLEARING_NGN, "amount": -80},
                ]
            },
            {"postings": [{"account": CLEARING_NGN, "amount": -10}]},
        ]
    )
    scratch_db.holds.insert_one({"account": wallet, "amount": 100, "status": "open"})

    found = {(v.rule, v.expected, v.actual) for v in check_invariants(scratch_db)}

    assert found == {
        ("currency_balances_sum_to_zero", 0, 10),
        ("balance_equals_postings", 90, 100),
        ("held_equals_open_holds", 100, 150),
        ("available_not_negative", 0, -50),
        ("available_equals_balance_less_held", -50, 0),
        ("entry_balances", 0, 10),
        ("entry_balances", 0, -10),
    }


def test_postings_of_every_wallet_here_sum_to_its_balance(db, ledger):
    wallet = funded_wallet(ledger, 1_000)
    ledger.debit(new_key(), wallet, 300)
    hold = ledger.hold(new_key(), wallet, 500, in_minutes(5))
    ledger.capture(new_key(), hold.hold_id, 200)

    assert postings_total(db, wallet) == account_state(db, wallet)["balance"] == 500
