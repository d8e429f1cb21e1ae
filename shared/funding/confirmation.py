"""Confirming a funding: Monnify's status API decides, never a webhook body.

PAID, OVERPAID and PARTIALLY_PAID credit what was actually paid, once, under the key
`monnify:<transactionReference>`. REVERSED takes the money back: what the wallet has,
and the rest recorded as a receivable on the user, whose wallet is then restricted until
the next funding repays it. PENDING changes nothing (the status API can lag a webhook);
EXPIRED and FAILED close the funding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import Int64
from pymongo.database import Database

from shared.errors import Conflict, NotFound
from shared.funding import fundings as f
from shared.ledger import (
    IdempotencyConflict,
    InsufficientFunds,
    Ledger,
    Posting,
    SystemAccount,
    system_account_id,
)
from shared.ledger.accounts import receivable_id
from shared.logs import get_logger
from shared.metrics import AMOUNT_CREDITED, FUNDINGS_CONFIRMED, RECONCILIATION_DISCREPANCIES
from shared.monnify.client import MonnifyClient
from shared.monnify.models import PaymentStatus, Transaction

log = get_logger(__name__)

_CREDITED_BY_STATUS = {
    PaymentStatus.PAID: f.PAID,
    PaymentStatus.OVERPAID: f.OVERPAID,
    PaymentStatus.PARTIALLY_PAID: f.PARTIALLY_PAID,
}
_CLOSED_BY_STATUS = {
    PaymentStatus.EXPIRED: f.EXPIRED,
    PaymentStatus.FAILED: f.FAILED,
    PaymentStatus.ABANDONED: f.EXPIRED,
    PaymentStatus.CANCELLED: f.FAILED,
}


class UnknownFunding(NotFound):
    """The notification names no funding of ours."""


@dataclass(frozen=True)
class Outcome:
    """What a confirmation concluded. `settled` is False while Monnify still says PENDING."""

    payment_reference: str
    status: str
    credited_minor: int = 0
    settled: bool = True


def credit_key(transaction_reference: str) -> str:
    return f"monnify:{transaction_reference}"


class FundingConfirmer:
    def __init__(self, db: Database, ledger: Ledger, monnify: MonnifyClient):
        self.db = db
        self.ledger = ledger
        self.monnify = monnify

    def confirm(
        self, *, payment_reference: str | None, transaction_reference: str | None = None
    ) -> Outcome:
        funding = self._find(payment_reference, transaction_reference)
        transaction = self._status(funding, transaction_reference)
        if transaction.currency != funding["currency"]:
            return self._discrepancy(funding, "currency differs from the funding's")
        if "transactionReference" not in funding:
            self._set(funding, {"transactionReference": transaction.transaction_reference})
            funding["transactionReference"] = transaction.transaction_reference
        status = transaction.payment_status
        if status in _CREDITED_BY_STATUS:
            return self._credit(funding, transaction)
        if status is PaymentStatus.REVERSED:
            return self._reverse(funding, transaction)
        if status in _CLOSED_BY_STATUS:
            return self._close(funding, _CLOSED_BY_STATUS[status], transaction)
        return Outcome(funding["_id"], funding["status"], settled=False)

    # ---- reading ---------------------------------------------------------------------

    def _find(self, payment_reference: str | None, transaction_reference: str | None) -> dict:
        funding = None
        if payment_reference:
            funding = self.db.fundings.find_one({"_id": payment_reference})
        if funding is None and transaction_reference:
            funding = self.db.fundings.find_one({"transactionReference": transaction_reference})
        if funding is None:
            raise UnknownFunding(
                "No funding matches this payment", {"paymentReference": payment_reference}
            )
        return funding

    def _status(self, funding: dict[str, Any], transaction_reference: str | None) -> Transaction:
        known = funding.get("transactionReference") or transaction_reference
        if known:
            transaction = self.monnify.get_transaction(known)
        else:
            transaction = self.monnify.get_transaction_by_payment_reference(funding["_id"])
        if transaction.payment_reference != funding["_id"]:
            raise UnknownFunding(
                "Monnify's transaction belongs to another payment",
                {"paymentReference": funding["_id"]},
            )
        return transaction

    # ---- decisions -------------------------------------------------------------------

    def _credit(self, funding: dict[str, Any], transaction: Transaction) -> Outcome:
        amount = transaction.amount_paid_minor
        if amount <= 0:
            return self._discrepancy(funding, "Monnify reports a payment of nothing")
        reference = transaction.transaction_reference
        status = _CREDITED_BY_STATUS[transaction.payment_status]
        try:
            result = self.ledger.credit(
                credit_key(reference),
                funding["account"],
                amount,
                reference=reference,
                description="Wallet funding via Monnify",
            )
        except IdempotencyConflict:
            # Credited before with another amount: never adjust silently.
            return self._discrepancy(funding, f"Monnify now reports {amount} paid")
        if result.replayed and funding["status"] == status:
            return Outcome(funding["_id"], status, 0)  # a repeat: nothing new happened
        # Before the status is final, so a repayment interrupted here is done by the retry.
        self._repay_receivable(funding, reference)
        self._set(
            funding,
            {
                "status": status,
                "amountPaid": Int64(amount),
                "amountCredited": Int64(amount),
                "paidOn": transaction.paid_on,
                "confirmedAt": datetime.now(UTC),
            },
            decision=f"credited {amount} ({transaction.payment_status.value})",
        )
        log.info("funding_credited", paymentReference=funding["_id"], amount=amount, status=status)
        FUNDINGS_CONFIRMED.labels(funding["currency"], status).inc()
        AMOUNT_CREDITED.labels(funding["currency"]).inc(amount)
        return Outcome(funding["_id"], status, amount)

    def _reverse(self, funding: dict[str, Any], transaction: Transaction) -> Outcome:
        if funding["status"] == f.REVERSED:
            return Outcome(funding["_id"], f.REVERSED)
        reference = transaction.transaction_reference
        credited = self._credited_amount(reference, funding["account"])
        if credited:
            self._take_back(funding, reference, credited)
        self._set(funding, {"status": f.REVERSED}, decision=f"reversed; {credited} taken back")
        return Outcome(funding["_id"], f.REVERSED, -credited)

    def _take_back(self, funding: dict[str, Any], reference: str, credited: int) -> None:
        wallet = funding["account"]
        taken = max(0, min(credited, self.ledger.reads.available(wallet)))
        shortfall = credited - taken
        currency = funding["currency"]
        postings = [Posting(system_account_id(SystemAccount.GATEWAY_CLEARING, currency), credited)]
        if taken:
            postings.append(Posting(wallet, -taken))
        if shortfall:
            postings.append(Posting(receivable_id(funding["userId"], currency), -shortfall))
        try:
            self.ledger.post(
                f"{credit_key(reference)}:reversal",
                postings,
                kind="reversal",
                reference=reference,
                description="Monnify reversed the payment",
            )
        except IdempotencyConflict:
            return  # already reversed by an earlier run that saw another available balance
        except InsufficientFunds:
            # The wallet spent some since we read it: try again with what it has now.
            raise Conflict("The wallet changed during the reversal; retry") from None
        if shortfall:
            self.ledger.set_restricted(
                wallet, True, f"reversal of {reference} left {shortfall} owed"
            )
        log.warning(
            "funding_reversed", paymentReference=funding["_id"], taken=taken, shortfall=shortfall
        )

    def _repay_receivable(self, funding: dict[str, Any], reference: str) -> None:
        """A new credit first repays what an earlier reversal left owed."""
        receivable = receivable_id(funding["userId"], funding["currency"])
        owed = -self.ledger.reads.balance(receivable)
        if owed <= 0:
            return
        repaid = min(owed, self.ledger.reads.available(funding["account"]))
        if repaid > 0:
            try:
                self.ledger.post(
                    f"{credit_key(reference)}:repay",
                    [Posting(funding["account"], -repaid), Posting(receivable, repaid)],
                    kind="repayment",
                    reference=reference,
                    description="Repayment of a reversed funding",
                )
            except InsufficientFunds:
                raise Conflict("The wallet changed during the repayment; retry") from None
            except IdempotencyConflict:
                return  # repaid by an earlier run, which then stopped before the status
        if repaid >= owed:
            self.ledger.set_restricted(funding["account"], False, "receivable repaid")

    def _close(self, funding: dict[str, Any], status: str, transaction: Transaction) -> Outcome:
        if funding["status"] in f.CREDITED_STATUSES:
            return self._discrepancy(
                funding, f"credited, but Monnify now says {transaction.payment_status.value}"
            )
        self._set(
            funding, {"status": status}, decision=f"closed: {transaction.payment_status.value}"
        )
        return Outcome(funding["_id"], status)

    def _discrepancy(self, funding: dict[str, Any], reason: str) -> Outcome:
        log.error("funding_discrepancy", paymentReference=funding["_id"], reason=reason)
        RECONCILIATION_DISCREPANCIES.labels("confirmation").inc()
        self._set(funding, {"discrepancy": reason}, decision=f"discrepancy: {reason}")
        return Outcome(funding["_id"], funding["status"])

    # ---- writing ---------------------------------------------------------------------

    def _credited_amount(self, reference: str, wallet: str) -> int:
        return self.ledger.reads.credited(credit_key(reference), wallet)

    def _set(self, funding: dict[str, Any], fields: dict[str, Any], decision: str | None = None):
        update: dict[str, Any] = {"$set": {**fields, "updatedAt": datetime.now(UTC)}}
        if decision:
            update["$push"] = {"decisions": {"at": datetime.now(UTC), "decision": decision}}
        self.db.fundings.update_one({"_id": funding["_id"]}, update)
