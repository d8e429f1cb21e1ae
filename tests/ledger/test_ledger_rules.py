"""The ledger's rules that need no server: every malformed movement is refused before
the ledger touches the database or Redis, with a 4xx domain error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from bson import Int64, ObjectId

from shared.errors import InvalidRequest
from shared.ledger import (
    AccountBusy,
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientFunds,
    Ledger,
    Posting,
    SystemAccount,
    system_account_id,
    wallet_id,
)
from shared.ledger.accounts import is_user_wallet, new_account_document

NOT_POSITIVE_INTEGERS = [0, -1, 1.5, 100.0, Decimal("100"), "100", True, False, None]
LATER = datetime(2030, 1, 1, tzinfo=UTC)
WALLET = wallet_id(ObjectId(), "NGN")
REVENUE = system_account_id(SystemAccount.PLATFORM_REVENUE, "NGN")


class Untouchable:
    """Stands in for the database and Redis: any use fails the test."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the ledger touched a server ({name}) before validating")

    def __getitem__(self, name: str):
        raise AssertionError(f"the ledger touched a server ({name}) before validating")


@pytest.fixture()
def ledger() -> Ledger:
    return Ledger(Untouchable(), Untouchable())


@pytest.mark.parametrize("amount", NOT_POSITIVE_INTEGERS)
@pytest.mark.parametrize("operation", ["credit", "debit"])
def test_credit_and_debit_take_positive_integers_only(ledger, operation, amount):
    with pytest.raises(InvalidRequest, match="positive integers"):
        getattr(ledger, operation)("key", WALLET, amount)


@pytest.mark.parametrize("amount", NOT_POSITIVE_INTEGERS)
def test_every_share_of_a_transfer_is_a_positive_integer(ledger, amount):
    with pytest.raises(InvalidRequest, match="positive integers"):
        ledger.transfer("key", WALLET, [(REVENUE, 100), (wallet_id(ObjectId(), "NGN"), amount)])


def test_a_transfer_needs_a_destination(ledger):
    with pytest.raises(InvalidRequest, match="at least two postings"):
        ledger.transfer("key", WALLET, [])


@pytest.mark.parametrize("amount", NOT_POSITIVE_INTEGERS)
def test_hold_takes_positive_integers_only(ledger, amount):
    with pytest.raises(InvalidRequest, match="positive integers"):
        ledger.hold("key", WALLET, amount, LATER)


@pytest.mark.parametrize("amount", NOT_POSITIVE_INTEGERS)
def test_extend_hold_takes_positive_integers_only(ledger, amount):
    with pytest.raises(InvalidRequest, match="positive integers"):
        ledger.extend_hold("key", "hold", amount, LATER)


@pytest.mark.parametrize("amount", [-1, 1.5, 0.0, Decimal("1"), "1", True, None])
def test_capture_takes_non_negative_integers_only(ledger, amount):
    with pytest.raises(InvalidRequest, match="non-negative integer"):
        ledger.capture("key", "hold", amount)


@pytest.mark.parametrize(
    ("postings", "rule"),
    [
        ([], "at least two postings"),
        ([Posting(WALLET, 100)], "at least two postings"),
        ([Posting(WALLET, 100), Posting(REVENUE, -99)], "sum to zero"),
        ([Posting(WALLET, 100), Posting(REVENUE, 0), Posting(REVENUE, -100)], "cannot be zero"),
        ([Posting(WALLET, 1.5), Posting(REVENUE, -1.5)], "integers"),
        ([Posting(WALLET, 100.0), Posting(REVENUE, -100)], "integers"),
        ([Posting(WALLET, True), Posting(REVENUE, -1)], "integers"),
        ([Posting(WALLET, Decimal(5)), Posting(REVENUE, -5)], "integers"),
    ],
)
def test_post_refuses_entries_that_are_not_balanced_integers(ledger, postings, rule):
    with pytest.raises(InvalidRequest, match=rule):
        ledger.post("key", postings)


def test_domain_errors_answer_with_4xx_statuses():
    assert InvalidRequest("x").status == 400
    assert InsufficientFunds("x").status == 402
    assert IdempotencyConflict("x").status == 409
    assert HoldNotOpen("x").status == 409
    assert AccountBusy("x").status == 409


def test_account_ids_name_their_owner_and_currency():
    user = ObjectId()
    assert wallet_id(user, "USD") == f"wallet:{user}:USD"
    assert system_account_id(SystemAccount.GATEWAY_CLEARING, "NGN") == (
        "system:gateway_clearing:NGN"
    )
    assert is_user_wallet(wallet_id(user, "NGN"))
    assert not is_user_wallet(REVENUE)


def test_a_new_wallet_starts_at_zero_in_int64():
    user = ObjectId()
    document = new_account_document(wallet_id(user, "NGN"), "NGN")
    assert document["kind"] == "user"
    assert document["userId"] == user
    assert document["currency"] == "NGN"
    for field in ("balance", "held", "available", "version"):
        assert document[field] == 0
        assert isinstance(document[field], Int64)


def test_a_new_system_account_has_no_owner():
    document = new_account_document(REVENUE, "NGN")
    assert document["kind"] == "system"
    assert "userId" not in document


@pytest.mark.parametrize(
    "call",
    [
        lambda ledger: ledger.credit("key", WALLET, 1),
        lambda ledger: ledger.transfer("key", WALLET, [(REVENUE, 1), (WALLET, 2)]),
        lambda ledger: ledger.hold("key", WALLET, 1, datetime.now(UTC) - timedelta(minutes=1)),
        lambda ledger: ledger.capture("key", "hold", 0),
    ],
)
def test_a_valid_movement_gets_past_validation_to_the_servers(ledger, call):
    """The control for the tests above: Untouchable does notice a server being used."""
    with pytest.raises(AssertionError, match="touched a server"):
        call(ledger)
