"""The simulator's memory: transactions, refunds, tokens, faults, all behind one lock.

Business rules live here and raise ApiError with the status, message and responseCode
Monnify answers with; the blueprints only translate HTTP to these calls.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from services.monnify_sim.config import SimConfig
from shared.monnify.models import MONNIFY_TIMEZONE

MIN_AMOUNT_MINOR = 20_00  # Monnify's minimum transaction: 20 NGN
MIN_REFUND_MINOR = 10_00
TRANSACTION_SECONDS = 2400  # checkout link and dynamic account live 40 minutes
FEE_RATE = Decimal("0.01")
FEE_CAP_MINOR = 2000_00
PAID_STATUSES = ("PAID", "OVERPAID", "PARTIALLY_PAID")
PAYMENT_METHODS = ("CARD", "ACCOUNT_TRANSFER", "USSD", "PHONE_NUMBER")
MERCHANT_NAME = "Payment Call System (simulator)"


class ApiError(Exception):
    """An error Monnify would answer: HTTP status, responseMessage, responseCode."""

    def __init__(self, status: int, message: str, code: str = "99"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def now() -> datetime:
    return datetime.now(MONNIFY_TIMEZONE)


@dataclass
class SimTransaction:
    transaction_reference: str
    payment_reference: str
    amount_minor: int
    currency: str
    customer_name: str
    customer_email: str
    payment_description: str
    redirect_url: str | None
    payment_methods: list[str]
    meta_data: dict[str, Any]
    created_at: datetime
    status: str = "PENDING"
    amount_paid_minor: int = 0
    paid_on: datetime | None = None
    payment_method: str | None = None
    account: dict[str, str] | None = None
    # Where the money was paid: a checkout (its paymentReference) or a reserved account.
    product_type: str = "API_NOTIFICATION"
    product_reference: str | None = None

    @property
    def fee_minor(self) -> int:
        fee = int((Decimal(self.amount_paid_minor) * FEE_RATE).to_integral_value())
        return min(fee, FEE_CAP_MINOR)

    def refresh_expiry(self, at: datetime) -> None:
        if self.status == "PENDING" and at >= self.created_at + timedelta(
            seconds=TRANSACTION_SECONDS
        ):
            self.status = "EXPIRED"


@dataclass
class SimRefund:
    refund_reference: str
    transaction_reference: str
    amount_minor: int
    reason: str
    customer_note: str | None
    refund_type: str
    created_on: datetime
    status: str = "IN_PROGRESS"
    completed_on: datetime | None = None
    comment: str = "Transaction refund is in progress."


@dataclass
class Fault:
    mode: str = "none"  # none | down | slow
    remaining: int | None = None  # None: until changed; n: the next n API calls

    def take(self) -> str:
        """The fault this API call suffers, counting it down."""
        if self.mode == "none":
            return "none"
        mode = self.mode
        if self.remaining is not None:
            self.remaining -= 1
            if self.remaining <= 0:
                self.mode, self.remaining = "none", None
        return mode


@dataclass
class SimState:
    config: SimConfig
    lock: threading.RLock = field(default_factory=threading.RLock)
    transactions: dict[str, SimTransaction] = field(default_factory=dict)
    payment_references: dict[str, str] = field(default_factory=dict)
    refunds: dict[str, SimRefund] = field(default_factory=dict)
    tokens: dict[str, datetime] = field(default_factory=dict)
    logins: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    fault: Fault = field(default_factory=Fault)
    # accountReference -> the reserved account (services/monnify_sim/reserved_accounts.py)
    reserved_accounts: dict[str, Any] = field(default_factory=dict)
    _sequence: itertools.count = field(default_factory=lambda: itertools.count(1))

    def reset(self) -> None:
        with self.lock:
            self.transactions.clear()
            self.payment_references.clear()
            self.refunds.clear()
            self.reserved_accounts.clear()
            self.tokens.clear()
            self.requests.clear()
            self.logins = 0
            self.fault = Fault()

    # --- tokens ----------------------------------------------------------------------

    def issue_token(self) -> tuple[str, int]:
        with self.lock:
            token = secrets.token_urlsafe(32)
            lifetime = self.config.token_seconds
            self.tokens[token] = now() + timedelta(seconds=lifetime)
            self.logins += 1
            return token, lifetime

    def token_valid(self, token: str) -> bool:
        with self.lock:
            expires = self.tokens.get(token)
            return expires is not None and now() < expires

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # --- transactions ----------------------------------------------------------------

    def create_transaction(self, reference: str, **details: Any) -> SimTransaction:
        """A new PENDING transaction; `details` are SimTransaction's descriptive fields."""
        with self.lock:
            if reference in self.payment_references:
                raise ApiError(422, f"Duplicate payment reference {reference}")
            created = now()
            transaction = SimTransaction(
                transaction_reference=self.next_transaction_reference(created),
                payment_reference=reference,
                created_at=created,
                **details,
            )
            self.add_transaction(transaction)
            return transaction

    def next_transaction_reference(self, at: datetime) -> str:
        return f"MNFY|{at:%Y%m%d%H%M%S}|{next(self._sequence):06d}"

    def add_transaction(self, transaction: SimTransaction) -> None:
        """Known to the status API by both its references from now on."""
        with self.lock:
            self.transactions[transaction.transaction_reference] = transaction
            self.payment_references[transaction.payment_reference] = (
                transaction.transaction_reference
            )

    def transaction(self, transaction_reference: str) -> SimTransaction:
        with self.lock:
            transaction = self.transactions.get(transaction_reference)
            if transaction is None:
                raise ApiError(
                    404, f"Could not find transaction with reference {transaction_reference}"
                )
            transaction.refresh_expiry(now())
            return transaction

    def transaction_by_payment_reference(self, payment_reference: str) -> SimTransaction:
        with self.lock:
            reference = self.payment_references.get(payment_reference)
            if reference is None:
                raise ApiError(
                    404, f"Could not find transaction with payment reference {payment_reference}"
                )
            return self.transaction(reference)

    def assign_account(self, transaction_reference: str) -> SimTransaction:
        """The dynamic account for a pending transaction; the same one when asked again."""
        with self.lock:
            transaction = self.transaction(transaction_reference)
            if transaction.status != "PENDING":
                raise ApiError(422, f"Transaction is {transaction.status.lower()}")
            if transaction.account is None:
                serial = transaction.transaction_reference.rsplit("|", 1)[-1]
                transaction.account = {
                    "accountNumber": f"5000{int(serial):06d}",
                    "accountName": f"PCS Sim - {transaction.customer_name}"[:60],
                    "bankName": "Wema bank",
                    "bankCode": "035",
                }
            return transaction

    def pay(
        self, transaction_reference: str, amount_minor: int | None, method: str
    ) -> SimTransaction:
        """A customer pays: PAID, PARTIALLY_PAID or OVERPAID by the amount."""
        with self.lock:
            transaction = self.transaction(transaction_reference)
            if transaction.status != "PENDING":
                raise ApiError(409, f"Transaction is already {transaction.status}")
            paid = transaction.amount_minor if amount_minor is None else amount_minor
            if paid <= 0:
                raise ApiError(400, "amount must be positive")
            transaction.amount_paid_minor = paid
            transaction.paid_on = now()
            transaction.payment_method = method
            transaction.status = (
                "PAID"
                if paid == transaction.amount_minor
                else "PARTIALLY_PAID"
                if paid < transaction.amount_minor
                else "OVERPAID"
            )
            return transaction

    def reverse(self, transaction_reference: str) -> SimTransaction:
        with self.lock:
            transaction = self.transaction(transaction_reference)
            if transaction.status not in PAID_STATUSES:
                raise ApiError(
                    409, f"Only a paid transaction can be reversed, not {transaction.status}"
                )
            transaction.status = "REVERSED"
            return transaction

    def expire(self, transaction_reference: str) -> SimTransaction:
        with self.lock:
            transaction = self.transaction(transaction_reference)
            if transaction.status != "PENDING":
                raise ApiError(
                    409, f"Only a pending transaction can expire, not {transaction.status}"
                )
            transaction.status = "EXPIRED"
            return transaction

    # --- refunds ---------------------------------------------------------------------

    def create_refund(
        self,
        transaction_reference: str,
        refund_reference: str,
        amount_minor: int | None,
        reason: str,
        customer_note: str | None,
    ) -> SimRefund:
        """Monnify's refund rules, in its order, with its R-codes."""
        with self.lock:
            transaction = self.transactions.get(transaction_reference)
            if transaction is None:
                raise ApiError(404, "Transaction with specified reference does not exist.", "R1")
            if len(reason) > 64 or (customer_note and len(customer_note) > 16):
                raise ApiError(
                    400,
                    "supplied value has exceeded the maximum allowed number of characters.",
                    "R8",
                )
            if refund_reference in self.refunds:
                raise ApiError(
                    422, "Supplied refund reference already exists for the merchant.", "R9"
                )
            if (
                transaction.status not in PAID_STATUSES
                or transaction.payment_method != "ACCOUNT_TRANSFER"
            ):
                raise ApiError(422, "Refund not permitted for specified transaction.", "R2")
            amount = transaction.amount_paid_minor if amount_minor is None else amount_minor
            if amount > transaction.amount_paid_minor:
                raise ApiError(422, "Specified refund amount is above transaction amount.", "R3")
            if amount < MIN_REFUND_MINOR:
                raise ApiError(422, "Specified refund amount is below minimum refund amount.", "R4")
            if self._refunded_minor(transaction_reference) + amount > transaction.amount_paid_minor:
                raise ApiError(
                    422,
                    "The total amount of all refunds done on a particular transaction "
                    "cannot exceed the transaction amount.",
                    "R12",
                )
            refund = SimRefund(
                refund_reference=refund_reference,
                transaction_reference=transaction_reference,
                amount_minor=amount,
                reason=reason,
                customer_note=customer_note,
                refund_type=(
                    "FULL_REFUND" if amount == transaction.amount_paid_minor else "PARTIAL_REFUND"
                ),
                created_on=now(),
            )
            self.refunds[refund_reference] = refund
            return refund

    def _refunded_minor(self, transaction_reference: str) -> int:
        return sum(
            refund.amount_minor
            for refund in self.refunds.values()
            if refund.transaction_reference == transaction_reference and refund.status != "FAILED"
        )

    def refund(self, refund_reference: str) -> SimRefund:
        with self.lock:
            refund = self.refunds.get(refund_reference)
            if refund is None:
                raise ApiError(
                    404, "No refund was initiated with the supplied refund reference.", "R7"
                )
            return refund

    def complete_refund(self, refund_reference: str, status: str) -> SimRefund:
        with self.lock:
            refund = self.refund(refund_reference)
            if refund.status != "IN_PROGRESS":
                raise ApiError(409, f"Refund is already {refund.status}")
            refund.status = status
            refund.completed_on = now()
            refund.comment = (
                "Refund processed successfully." if status == "COMPLETED" else "Refund failed."
            )
            return refund
