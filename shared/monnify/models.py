"""Monnify's response and notification bodies, parsed strictly into typed values.

Parsing is loose about encodings, strict about meaning: amounts may come as JSON numbers
or strings and become integer minor units through Decimal (never float); `paidOn` comes as
`17/11/2021 3:48:10 PM` or `2021-11-17 11:28:42.615` (or ISO 8601) and becomes an aware
datetime. Monnify writes local Lagos time (WAT, UTC+1, no daylight saving) without an
offset, so naive times are read as WAT. Anything missing or malformed raises
MonnifyProtocolError naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from shared.money import AmountError, exponent_of, to_minor
from shared.monnify.errors import MonnifyProtocolError

MONNIFY_TIMEZONE = timezone(timedelta(hours=1), "WAT")
# The dynamic account and checkout link live 40 minutes when Monnify doesn't say.
DEFAULT_ACCOUNT_SECONDS = 2400

_PAID_ON_FORMATS = (
    "%d/%m/%Y %I:%M:%S %p",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
)


class PaymentStatus(StrEnum):
    PAID = "PAID"
    OVERPAID = "OVERPAID"
    PARTIALLY_PAID = "PARTIALLY_PAID"
    PENDING = "PENDING"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"
    REVERSED = "REVERSED"
    ABANDONED = "ABANDONED"
    CANCELLED = "CANCELLED"


class RefundStatus(StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


def parse_amount(value: Any, name: str, currency: str = "NGN") -> int:
    """A non-negative major-unit amount (number or numeric string) in minor units."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise MonnifyProtocolError(f"Monnify sent {name} that is not a number")
    try:
        minor = to_minor(
            Decimal(value.strip()) if isinstance(value, str) else value, exponent_of(currency)
        )
    except (InvalidOperation, AmountError) as exc:
        raise MonnifyProtocolError(f"Monnify sent a malformed {name}: {exc}") from None
    if minor < 0:
        raise MonnifyProtocolError(f"Monnify sent a negative {name}")
    return minor


def parse_optional_amount(value: Any, name: str, currency: str = "NGN") -> int | None:
    return None if value is None or value == "" else parse_amount(value, name, currency)


def parse_paid_on(value: Any, name: str = "paidOn") -> datetime | None:
    """Either of Monnify's date formats (or ISO 8601) as an aware datetime; None when empty."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MonnifyProtocolError(f"Monnify sent {name} that is not a string")
    text = value.strip()
    for pattern in _PAID_ON_FORMATS:
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=MONNIFY_TIMEZONE)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MonnifyProtocolError(f"Monnify sent an unreadable {name}: {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=MONNIFY_TIMEZONE)


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MonnifyProtocolError(f"Monnify's answer lacks {name}")
    return value


def _optional_text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    return str(value)


def _object(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    return value if isinstance(value, Mapping) else {}


def _enum(enum: type[StrEnum], data: Mapping[str, Any], name: str) -> Any:
    raw = _text(data, name)
    try:
        return enum(raw.strip().upper())
    except ValueError:
        raise MonnifyProtocolError(f"Monnify sent an unknown {name}: {raw!r}") from None


@dataclass(frozen=True)
class CheckoutSession:
    """init-transaction's answer."""

    transaction_reference: str
    payment_reference: str
    checkout_url: str
    merchant_name: str | None
    enabled_payment_methods: tuple[str, ...]

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> CheckoutSession:
        methods = data.get("enabledPaymentMethod") or ()
        return cls(
            transaction_reference=_text(data, "transactionReference"),
            payment_reference=_text(data, "paymentReference"),
            checkout_url=_text(data, "checkoutUrl"),
            merchant_name=_optional_text(data, "merchantName"),
            enabled_payment_methods=tuple(str(method) for method in methods),
        )


@dataclass(frozen=True)
class BankTransferAccount:
    """bank-transfer init-payment's answer: where to send the money, and until when."""

    transaction_reference: str
    account_number: str
    account_name: str
    bank_name: str
    bank_code: str | None
    expires_at: datetime
    amount_minor: int | None
    fee_minor: int | None
    total_payable_minor: int | None

    @classmethod
    def from_payload(
        cls, data: Mapping[str, Any], transaction_reference: str, now: datetime, currency: str
    ) -> BankTransferAccount:
        seconds = data.get("accountDurationSeconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | Decimal | str):
            seconds = DEFAULT_ACCOUNT_SECONDS
        try:
            lifetime = timedelta(seconds=int(seconds))
        except ValueError:
            raise MonnifyProtocolError("Monnify sent a malformed accountDurationSeconds") from None
        return cls(
            transaction_reference=transaction_reference,
            account_number=_text(data, "accountNumber"),
            account_name=_text(data, "accountName"),
            bank_name=_text(data, "bankName"),
            bank_code=_optional_text(data, "bankCode"),
            expires_at=now + lifetime,
            amount_minor=parse_optional_amount(data.get("amount"), "amount", currency),
            fee_minor=parse_optional_amount(data.get("fee"), "fee", currency),
            total_payable_minor=parse_optional_amount(
                data.get("totalPayable"), "totalPayable", currency
            ),
        )


@dataclass(frozen=True)
class Transaction:
    """A transaction as the status API reports it; also parses a webhook's eventData,
    whose fields are the same."""

    transaction_reference: str
    payment_reference: str
    payment_status: PaymentStatus
    currency: str
    amount_paid_minor: int
    total_payable_minor: int | None
    settlement_amount_minor: int | None
    paid_on: datetime | None
    payment_method: str | None
    payment_description: str | None
    customer_email: str | None
    customer_name: str | None
    product_type: str | None
    product_reference: str | None
    meta_data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Transaction:
        currency = (_optional_text(data, "currency") or "NGN").upper()
        customer = _object(data, "customer")
        product = _object(data, "product")
        return cls(
            transaction_reference=_text(data, "transactionReference"),
            payment_reference=_text(data, "paymentReference"),
            payment_status=_enum(PaymentStatus, data, "paymentStatus"),
            currency=currency,
            amount_paid_minor=parse_optional_amount(data.get("amountPaid"), "amountPaid", currency)
            or 0,
            total_payable_minor=parse_optional_amount(
                data.get("totalPayable"), "totalPayable", currency
            ),
            settlement_amount_minor=parse_optional_amount(
                data.get("settlementAmount"), "settlementAmount", currency
            ),
            paid_on=parse_paid_on(data.get("paidOn")),
            payment_method=_optional_text(data, "paymentMethod"),
            payment_description=_optional_text(data, "paymentDescription"),
            customer_email=_optional_text(customer, "email"),
            customer_name=_optional_text(customer, "name"),
            product_type=_optional_text(product, "type"),
            product_reference=_optional_text(product, "reference"),
            meta_data=dict(_object(data, "metaData") or _object(data, "metadata")),
        )


@dataclass(frozen=True)
class Refund:
    """A refund as initiate-refund, the refund status API and refund webhooks report it."""

    refund_reference: str
    transaction_reference: str
    refund_amount_minor: int
    refund_status: RefundStatus
    refund_type: str | None
    refund_reason: str | None
    customer_note: str | None
    created_on: datetime | None
    completed_on: datetime | None
    comment: str | None

    @classmethod
    def from_payload(cls, data: Mapping[str, Any], currency: str = "NGN") -> Refund:
        return cls(
            refund_reference=_text(data, "refundReference"),
            transaction_reference=_text(data, "transactionReference"),
            refund_amount_minor=parse_amount(data.get("refundAmount"), "refundAmount", currency),
            refund_status=_enum(RefundStatus, data, "refundStatus"),
            refund_type=_optional_text(data, "refundType"),
            refund_reason=_optional_text(data, "refundReason"),
            customer_note=_optional_text(data, "customerNote"),
            created_on=parse_paid_on(data.get("createdOn"), "createdOn"),
            completed_on=parse_paid_on(data.get("completedOn"), "completedOn"),
            comment=_optional_text(data, "comment"),
        )
