"""Fundings: their statuses, and starting one: a pending record under our own
paymentReference first, then Monnify's checkout and dynamic account. An Idempotency-Key
makes a retried request answer the first response without a second Monnify transaction.
Every write to a funding's record is `shared.funding.repository`'s."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import Int64, ObjectId
from pymongo.database import Database

from shared.errors import Conflict, ErrorCode
from shared.funding.repository import Change, FundingRepository
from shared.ledger.accounts import open_wallet
from shared.logs import get_logger
from shared.metrics import FUNDINGS_INITIATED
from shared.monnify.client import MonnifyClient
from shared.monnify.errors import MonnifyError
from shared.monnify.models import Transaction

log = get_logger(__name__)

# Statuses a funding moves through; the final ones never change again except by reversal.
INITIALIZING = "initializing"  # recorded, Monnify not yet (fully) answered
PENDING = "pending"  # waiting for the customer to pay
INIT_FAILED = "init_failed"  # Monnify failed while we set it up; a payment is still honoured
PAID = "paid"
OVERPAID = "overpaid"
PARTIALLY_PAID = "partially_paid"
EXPIRED = "expired"
FAILED = "failed"
REVERSED = "reversed"
OPEN_STATUSES = (INITIALIZING, PENDING, INIT_FAILED)
CREDITED_STATUSES = (PAID, OVERPAID, PARTIALLY_PAID)


@dataclass(frozen=True)
class FundingRequest:
    user_id: ObjectId
    email: str
    amount_minor: int
    currency: str
    idempotency_key: str | None

    def fingerprint(self) -> str:
        canonical = json.dumps(
            {"amount": self.amount_minor, "currency": self.currency, "email": self.email},
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def new_payment_reference() -> str:
    return f"FND-{ObjectId()}"


def start_funding(db: Database, monnify: MonnifyClient, request: FundingRequest) -> dict[str, Any]:
    """Create (or, for a repeated Idempotency-Key, return) a funding and its payment details."""
    if request.idempotency_key:
        previous = _replay(db, request)
        if previous is not None:
            return previous
    funding = _record_initializing(db, request)
    if funding is None:  # a concurrent request with the same key got there first
        replay = _replay(db, request)
        if replay is None:
            raise Conflict(
                "A request with this Idempotency-Key failed; retry it",
                code=ErrorCode.IDEMPOTENCY_IN_PROGRESS,
            )
        return replay
    try:
        response = _open_at_monnify(db, monnify, funding)
    except MonnifyError:
        _mark_init_failed(db, funding["_id"])
        raise
    return response


def transaction_at_monnify(
    monnify: MonnifyClient, funding: dict[str, Any], transaction_reference: str | None = None
) -> Transaction:
    """Monnify's transaction for a funding: by its transactionReference (or the one a
    notification gave) if known, else by its paymentReference."""
    known = funding.get("transactionReference") or transaction_reference
    if known:
        return monnify.get_transaction(known)
    return monnify.get_transaction_by_payment_reference(funding["_id"])


def _replay(db: Database, request: FundingRequest) -> dict[str, Any] | None:
    funding = FundingRepository(db).by_key(request.user_id, request.idempotency_key)
    return stored_answer(funding, request.fingerprint(), request.idempotency_key)


def stored_answer(
    record: dict[str, Any] | None, fingerprint: str, idempotency_key: str | None
) -> dict[str, Any] | None:
    """The first answer given under an Idempotency-Key (None: the key is new); Conflict
    if the key came with another request, or its first request is still running."""
    if record is None:
        return None
    if record["fingerprint"] != fingerprint:
        raise Conflict(
            "This Idempotency-Key was already used with a different request",
            {"idempotencyKey": idempotency_key},
            code=ErrorCode.IDEMPOTENCY_CONFLICT,
        )
    if record.get("response") is None:
        raise Conflict(
            "A request with this Idempotency-Key is still in progress; retry shortly",
            code=ErrorCode.IDEMPOTENCY_IN_PROGRESS,
        )
    return record["response"]


def _record_initializing(db: Database, request: FundingRequest) -> dict[str, Any] | None:
    now = datetime.now(UTC)
    funding: dict[str, Any] = {
        "_id": new_payment_reference(),
        "userId": request.user_id,
        "account": open_wallet(db, request.user_id, request.currency),
        "email": request.email,
        "currency": request.currency,
        "amountExpected": Int64(request.amount_minor),
        "status": INITIALIZING,
        "fingerprint": request.fingerprint(),
        "createdAt": now,
        "updatedAt": now,
    }
    if request.idempotency_key:
        funding["idempotencyKey"] = request.idempotency_key
    return funding if FundingRepository(db).insert_new([funding]) else None


def _open_at_monnify(
    db: Database, monnify: MonnifyClient, funding: dict[str, Any]
) -> dict[str, Any]:
    checkout = monnify.init_transaction(
        amount_minor=int(funding["amountExpected"]),
        currency=funding["currency"],
        payment_reference=funding["_id"],
        customer_name=funding["email"],
        customer_email=funding["email"],
        payment_description="Wallet funding",
    )
    # Stored at once: a payment on the checkout page must be matched even if the next
    # call fails.
    repository = FundingRepository(db)
    repository.apply(
        Change(funding["_id"], {"transactionReference": checkout.transaction_reference})
    )
    account = monnify.init_bank_transfer(
        checkout.transaction_reference,
        currency=funding["currency"],
        expected_amount_minor=int(funding["amountExpected"]),
    )
    response = {
        "transactionReference": checkout.transaction_reference,
        "paymentReference": funding["_id"],
        "accountNumber": account.account_number,
        "bankName": account.bank_name,
        "accountName": account.account_name,
        "amount": int(funding["amountExpected"]),
        "currency": funding["currency"],
        "expiryDate": account.expires_at.replace(microsecond=0),  # Mongo keeps milliseconds
        "checkoutUrl": checkout.checkout_url,
    }
    repository.apply(
        Change(
            funding["_id"],
            {"status": PENDING, "response": response},
            from_statuses=(INITIALIZING,),
        )
    )
    log.info("funding_started", paymentReference=funding["_id"], amount=response["amount"])
    FUNDINGS_INITIATED.labels(funding["currency"]).inc()
    return response


def _mark_init_failed(db: Database, payment_reference: str) -> None:
    """Monnify failed mid-way: the key is freed so the client can retry it, and the record
    stays, so a payment made on a checkout Monnify did create is still credited."""
    FundingRepository(db).apply(
        Change(
            payment_reference,
            {"status": INIT_FAILED},
            unset=("idempotencyKey",),
            from_statuses=(INITIALIZING,),
        )
    )
    log.warning("funding_init_failed", paymentReference=payment_reference)
