"""Parsing Monnify's bodies: amounts as numbers or strings via Decimal into minor units,
both paidOn formats into aware datetimes, strict about what's missing or malformed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import simplejson
from hypothesis import given
from hypothesis import strategies as st

from shared.monnify.errors import MonnifyProtocolError
from shared.monnify.models import (
    MONNIFY_TIMEZONE,
    BankTransferAccount,
    PaymentStatus,
    Refund,
    RefundStatus,
    Transaction,
    parse_amount,
    parse_paid_on,
)


@pytest.mark.parametrize(
    ("value", "minor"),
    [
        (3000, 300000),
        (Decimal("100.00"), 10000),
        (Decimal("1234.5"), 123450),
        ("2990.00", 299000),
        (" 20 ", 2000),
        ("0.01", 1),
        (0, 0),
    ],
)
def test_amounts_from_numbers_or_strings(value: object, minor: int) -> None:
    assert parse_amount(value, "amountPaid") == minor


@pytest.mark.parametrize(
    "value", [100.5, True, None, "abc", "", "1.005", Decimal("NaN"), "-5.00", -1, [1], {}]
)
def test_bad_amounts_are_refused(value: object) -> None:
    with pytest.raises(MonnifyProtocolError, match="amountPaid"):
        parse_amount(value, "amountPaid")


@given(st.integers(min_value=0, max_value=10**13), st.booleans())
def test_amount_round_trips_through_json_number_or_string(minor: int, as_string: bool) -> None:
    major = Decimal(minor).scaleb(-2).quantize(Decimal("0.01"))
    encoded = simplejson.dumps({"a": str(major) if as_string else major}, use_decimal=True)
    assert parse_amount(simplejson.loads(encoded, use_decimal=True)["a"], "a") == minor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("17/11/2021 3:48:10 PM", datetime(2021, 11, 17, 15, 48, 10, tzinfo=MONNIFY_TIMEZONE)),
        ("17/11/2021 12:05:00 AM", datetime(2021, 11, 17, 0, 5, tzinfo=MONNIFY_TIMEZONE)),
        ("01/02/2026 12:30:00 PM", datetime(2026, 2, 1, 12, 30, tzinfo=MONNIFY_TIMEZONE)),
        (
            "2021-11-17 11:28:42.615",
            datetime(2021, 11, 17, 11, 28, 42, 615000, tzinfo=MONNIFY_TIMEZONE),
        ),
        ("2021-11-17 11:28:42", datetime(2021, 11, 17, 11, 28, 42, tzinfo=MONNIFY_TIMEZONE)),
        ("2025-01-14T10:30:00Z", datetime(2025, 1, 14, 10, 30, tzinfo=UTC)),
    ],
)
def test_paid_on_formats(text: str, expected: datetime) -> None:
    parsed = parse_paid_on(text)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is not None


def test_monnify_local_time_is_wat() -> None:
    parsed = parse_paid_on("2021-11-17 11:28:42.615")
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(hours=1)
    assert parsed.astimezone(UTC).hour == 10


@pytest.mark.parametrize("value", [None, ""])
def test_empty_paid_on_is_none(value: object) -> None:
    assert parse_paid_on(value) is None


@pytest.mark.parametrize("value", ["yesterday", "17/13/2021 3:48:10 PM", 1637160490, "2021-11-17T"])
def test_unreadable_paid_on_is_refused(value: object) -> None:
    with pytest.raises(MonnifyProtocolError, match="paidOn"):
        parse_paid_on(value)


# Monnify's documented SUCCESSFUL_TRANSACTION eventData (webhook event-types page):
# amountPaid a number, settlementAmount a string, paidOn with milliseconds.
DOCUMENTED_EVENT_DATA = {
    "product": {"reference": "1636106097661", "type": "RESERVED_ACCOUNT"},
    "transactionReference": "MNFY|04|20211117112842|000170",
    "paymentReference": "MNFY|04|20211117112842|000170",
    "paidOn": "2021-11-17 11:28:42.615",
    "paymentDescription": "Adm",
    "metaData": {},
    "paymentSourceInformation": [{"bankCode": "", "amountPaid": 3000}],
    "destinationAccountInformation": {"bankCode": "232", "bankName": "Sterling bank"},
    "amountPaid": 3000,
    "totalPayable": 3000,
    "cardDetails": {},
    "paymentMethod": "ACCOUNT_TRANSFER",
    "currency": "NGN",
    "settlementAmount": "2990.00",
    "paymentStatus": "PAID",
    "customer": {"name": "John Doe", "email": "test@tester.com"},
}


def test_transaction_from_documented_event_data() -> None:
    transaction = Transaction.from_payload(DOCUMENTED_EVENT_DATA)
    assert transaction.payment_status is PaymentStatus.PAID
    assert transaction.amount_paid_minor == 300000
    assert transaction.total_payable_minor == 300000
    assert transaction.settlement_amount_minor == 299000
    assert transaction.paid_on == datetime(2021, 11, 17, 11, 28, 42, 615000, MONNIFY_TIMEZONE)
    assert transaction.product_type == "RESERVED_ACCOUNT"
    assert transaction.customer_email == "test@tester.com"
    assert transaction.currency == "NGN"


def test_pending_transaction_without_payment_fields() -> None:
    data = {
        **DOCUMENTED_EVENT_DATA,
        "paymentStatus": "pending",
        "amountPaid": None,
        "paidOn": None,
        "settlementAmount": None,
        "customer": None,
    }
    transaction = Transaction.from_payload(data)
    assert transaction.payment_status is PaymentStatus.PENDING
    assert transaction.amount_paid_minor == 0
    assert transaction.paid_on is None
    assert transaction.settlement_amount_minor is None
    assert transaction.customer_email is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"paymentStatus": "MAYBE"}, "paymentStatus"),
        ({"paymentStatus": None}, "paymentStatus"),
        ({"transactionReference": ""}, "transactionReference"),
        ({"paymentReference": None}, "paymentReference"),
        ({"amountPaid": "-1.00"}, "amountPaid"),
        ({"amountPaid": "lots"}, "amountPaid"),
        ({"paidOn": "soon"}, "paidOn"),
    ],
)
def test_malformed_transaction_names_the_field(change: dict, field: str) -> None:
    with pytest.raises(MonnifyProtocolError, match=field):
        Transaction.from_payload({**DOCUMENTED_EVENT_DATA, **change})


def test_refund_from_documented_response() -> None:
    refund = Refund.from_payload(
        {
            "refundReference": "refundReference",
            "transactionReference": "MNFY|0111231|123412342",
            "refundReason": "Order was cancelled",
            "customerNote": "Refund-orderJ111",
            "refundAmount": 1200,
            "refundStatus": "IN_PROGRESS",
            "refundType": "FULL_REFUND",
            "createdOn": "2021-04-20 16:21:37.179",
            "completedOn": "",
            "comment": "Transaction refund is in progress.",
        }
    )
    assert refund.refund_amount_minor == 120000
    assert refund.refund_status is RefundStatus.IN_PROGRESS
    assert refund.completed_on is None
    assert refund.created_on == datetime(2021, 4, 20, 16, 21, 37, 179000, MONNIFY_TIMEZONE)


def test_bank_transfer_account_expiry_is_computed() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    data = {
        "accountNumber": "5000000001",
        "accountName": "PCS Sim - A",
        "bankName": "Wema bank",
        "bankCode": "035",
        "amount": "5000.00",
    }
    account = BankTransferAccount.from_payload(data, "MNFY|1|2", now, "NGN")
    assert account.expires_at == now + timedelta(seconds=2400)
    assert account.amount_minor == 500000
    shorter = BankTransferAccount.from_payload(
        {**data, "accountDurationSeconds": 600}, "MNFY|1|2", now, "NGN"
    )
    assert shorter.expires_at == now + timedelta(seconds=600)
