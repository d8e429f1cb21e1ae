"""Confirming a funding: Monnify's status API decides, never a webhook body.

PAID, OVERPAID and PARTIALLY_PAID credit what was actually paid, once, under the key
`monnify:<transactionReference>`. REVERSED takes the money back: what the wallet has,
and the rest recorded as a receivable on the user, whose wallet is then restricted until
the next funding repays it. PENDING changes nothing (the status API can lag a webhook);
EXPIRED and FAILED close the funding.

Notifications that arrive together are confirmed together (`confirm_many`): their
fundings read in one query, Monnify asked about each at once over the client's kept-alive
session, their credits committed in one ledger transaction and their fundings updated in
one bulk write. Each keeps its own answer: one funding's error is not another's.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import Int64
from pymongo import UpdateOne
from pymongo.database import Database

from shared.errors import Conflict, DomainError, ErrorCode, NotFound, refusal_or_result
from shared.funding import fundings as f
from shared.funding.reserved_accounts import PRODUCT_TYPE as RESERVED_ACCOUNT
from shared.ledger import (
    Credit,
    EntryResult,
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
from shared.queries import in_chunks

log = get_logger(__name__)

# Status look-ups in flight at once for one batch: I/O-bound, each on the shared session
# (whose connection pool holds 10).
LOOKUP_THREADS = 8

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


_DESCRIPTION_CHECKOUT = "Wallet funding via Monnify"
_DESCRIPTION_TRANSFER = "Bank transfer to your funding account"


class UnknownFunding(NotFound):
    """The notification names no funding of ours."""


@dataclass(frozen=True)
class Outcome:
    """What a confirmation concluded. `settled` is False while Monnify still says PENDING."""

    payment_reference: str
    status: str
    credited_minor: int = 0
    settled: bool = True


@dataclass(frozen=True)
class Notice:
    """What a notification (or a reconciliation pass) names."""

    payment_reference: str | None
    transaction_reference: str | None = None


# What one notice came to: an outcome, or the domain error that stopped it (no such
# funding, Monnify down or odd, the wallet busy).
Answer = Outcome | DomainError


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
        (answer,) = self.confirm_many([Notice(payment_reference, transaction_reference)])
        if isinstance(answer, DomainError):
            raise answer
        return answer

    def confirm_many(self, notices: Sequence[Notice]) -> list[Answer]:
        """Each notice's answer, in order; a funding named twice is confirmed once."""
        fundings = self._find_many(notices)
        named: dict[str, tuple[dict[str, Any], str | None]] = {}
        for notice, funding in zip(notices, fundings, strict=True):
            if isinstance(funding, dict):
                named.setdefault(funding["_id"], (funding, notice.transaction_reference))
        answers = self._settle(list(named.values()))
        return [
            funding if isinstance(funding, DomainError) else answers[funding["_id"]]
            for funding in fundings
        ]

    def _settle(self, named: list[tuple[dict[str, Any], str | None]]) -> dict[str, Answer]:
        """Ask Monnify about each funding at once, decide each, then credit together."""
        # Each look-up runs in a copy of this task's context: its log lines keep the
        # request id, and its call to Monnify stays in the task's trace.
        contexts = [copy_context() for _ in named]
        with ThreadPoolExecutor(max(1, min(LOOKUP_THREADS, len(named)))) as pool:
            looked_up = list(
                pool.map(
                    lambda context, pair: context.run(refusal_or_result, self._status, *pair),
                    contexts,
                    named,
                )
            )
        answers: dict[str, Answer] = {}
        to_credit: list[tuple[dict[str, Any], Transaction]] = []
        for (funding, _), transaction in zip(named, looked_up, strict=True):
            decided = (
                refusal_or_result(self._decide, funding, transaction)
                if isinstance(transaction, Transaction)
                else transaction
            )
            if decided is None:
                to_credit.append((funding, transaction))
            else:
                answers[funding["_id"]] = decided
        if to_credit:
            answers.update(self._credit_many(to_credit))
        return answers

    def _decide(self, funding: dict[str, Any], transaction: Transaction) -> Outcome | None:
        """The outcome of what Monnify reports, or None for a credit (made with others)."""
        if transaction.currency != funding["currency"]:
            return self._discrepancy(funding, "currency differs from the funding's")
        if not _same_reserved_account(funding, transaction):
            return self._discrepancy(funding, "Monnify reports it paid into another account")
        if "transactionReference" not in funding:
            self._set(funding, {"transactionReference": transaction.transaction_reference})
            funding["transactionReference"] = transaction.transaction_reference
        status = transaction.payment_status
        if status in _CREDITED_BY_STATUS:
            if transaction.amount_paid_minor <= 0:
                return self._discrepancy(funding, "Monnify reports a payment of nothing")
            return None
        if status is PaymentStatus.REVERSED:
            return self._reverse(funding, transaction)
        if status in _CLOSED_BY_STATUS:
            return self._close(funding, _CLOSED_BY_STATUS[status], transaction)
        return Outcome(funding["_id"], funding["status"], settled=False)

    # ---- reading ---------------------------------------------------------------------

    def _find_many(self, notices: Sequence[Notice]) -> list[dict[str, Any] | UnknownFunding]:
        """Each notice's funding: by paymentReference, else by transactionReference."""
        by_payment = self._fundings("_id", [n.payment_reference for n in notices])
        unmatched = [n for n in notices if n.payment_reference not in by_payment]
        by_transaction = self._fundings(
            "transactionReference", [n.transaction_reference for n in unmatched]
        )
        return [
            by_payment.get(n.payment_reference)
            or by_transaction.get(n.transaction_reference)
            or UnknownFunding(
                "No funding matches this payment", {"paymentReference": n.payment_reference}
            )
            for n in notices
        ]

    def _fundings(self, field: str, values: list[str | None]) -> dict[str, dict[str, Any]]:
        wanted = sorted({v for v in values if isinstance(v, str) and v})
        if not wanted:
            return {}
        # In chunks: the embedded server's cost for an $in grows with its length squared.
        # Both fields are indexed (_id, and the sparse unique transactionReference).
        return {
            funding[field]: funding
            for chunk in in_chunks(wanted)
            for funding in self.db.fundings.find({field: {"$in": chunk}})
        }

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

    def _credit_many(self, pairs: list[tuple[dict[str, Any], Transaction]]) -> dict[str, Answer]:
        """Credit what was paid, each under its own key, in one ledger transaction; then
        repay receivables and mark the fundings credited in one bulk write."""
        credits = [
            Credit(
                credit_key(t.transaction_reference),
                funding["account"],
                t.amount_paid_minor,
                reference=t.transaction_reference,
                description=_DESCRIPTION_TRANSFER
                if funding.get("accountReference")
                else _DESCRIPTION_CHECKOUT,
            )
            for funding, t in pairs
        ]
        results = self.ledger.credit_many(credits)
        receivables = [
            receivable_id(funding["userId"], funding["currency"]) for funding, _ in pairs
        ]
        owing = {a for a, balance in self.ledger.reads.balances(receivables).items() if balance < 0}
        answers: dict[str, Answer] = {}
        credited: list[tuple[dict[str, Any], Outcome, UpdateOne]] = []
        for (funding, transaction), result in zip(pairs, results, strict=True):
            settled = refusal_or_result(self._after_credit, funding, transaction, result, owing)
            if isinstance(settled, tuple):
                credited.append((funding, *settled))
                settled = settled[0]
            answers[funding["_id"]] = settled
        if credited:
            self.db.fundings.bulk_write([update for _, _, update in credited], ordered=False)
        for funding, outcome, _ in credited:
            _count_credit(funding, outcome)
        return answers

    def _after_credit(
        self,
        funding: dict[str, Any],
        transaction: Transaction,
        result: EntryResult | DomainError,
        owing: set[str],
    ) -> Outcome | tuple[Outcome, UpdateOne]:
        """The outcome of one credit, with the funding's update if it moved money now."""
        amount = transaction.amount_paid_minor
        if isinstance(result, IdempotencyConflict):
            # Credited before with another amount: never adjust silently.
            return self._discrepancy(funding, f"Monnify now reports {amount} paid")
        if isinstance(result, DomainError):
            raise result
        status = _CREDITED_BY_STATUS[transaction.payment_status]
        if result.replayed and funding["status"] == status:
            return Outcome(funding["_id"], status, 0)  # a repeat: nothing new happened
        # Before the status is final, so a repayment interrupted here (before or after
        # its posting) is finished by the retry, whose credit is then a replay.
        if result.replayed or receivable_id(funding["userId"], funding["currency"]) in owing:
            self._repay_receivable(funding, transaction.transaction_reference)
        now = datetime.now(UTC)
        fields = {
            "status": status,
            "amountPaid": Int64(amount),
            "amountCredited": Int64(amount),
            "paidOn": transaction.paid_on,
            "confirmedAt": now,
            # Due a recheck for a reversal at once (Monnify sends no event for one); the
            # reconciler then moves it on (Reconciler.recheck_credited_fundings).
            "recheckAt": now,
        }
        decision = f"credited {amount} ({transaction.payment_status.value})"
        update = UpdateOne({"_id": funding["_id"]}, _funding_update(fields, decision))
        return Outcome(funding["_id"], status, amount), update

    def _reverse(self, funding: dict[str, Any], transaction: Transaction) -> Outcome:
        if funding["status"] == f.REVERSED:
            return Outcome(funding["_id"], f.REVERSED)
        reference = transaction.transaction_reference
        credited = self._credited_amount(reference, funding["account"])
        if credited:
            self._take_back(funding, reference, credited)
        # Reversed for good: no more rechecks.
        self._set(
            funding,
            {"status": f.REVERSED},
            decision=f"reversed; {credited} taken back",
            unset=("recheckAt",),
        )
        return Outcome(funding["_id"], f.REVERSED, -credited)

    def _take_back(self, funding: dict[str, Any], reference: str, credited: int) -> None:
        wallet = funding["account"]
        receivable = receivable_id(funding["userId"], funding["currency"])
        key = f"{credit_key(reference)}:reversal"
        taken = max(0, min(credited, self.ledger.reads.available(wallet)))
        shortfall = credited - taken
        currency = funding["currency"]
        postings = [Posting(system_account_id(SystemAccount.GATEWAY_CLEARING, currency), credited)]
        if taken:
            postings.append(Posting(wallet, -taken))
        if shortfall:
            postings.append(Posting(receivable, -shortfall))
        try:
            self.ledger.post(
                key,
                postings,
                kind="reversal",
                reference=reference,
                description="Monnify reversed the payment",
            )
        except IdempotencyConflict:
            # An earlier run posted it (it saw another available balance) and stopped
            # before the restriction: finish its work from what it posted.
            shortfall = -self.ledger.reads.credited(key, receivable)
            taken = credited - shortfall
        except InsufficientFunds:
            # The wallet spent some since we read it: try again with what it has now.
            raise Conflict(
                "The wallet changed during the reversal; retry", code=ErrorCode.BUSY
            ) from None
        # Only while still owed: a funding may have repaid it since an earlier run posted.
        if shortfall and self.ledger.reads.balance(receivable) < 0:
            self.ledger.set_restricted(
                wallet, True, f"reversal of {reference} left {shortfall} owed"
            )
        log.warning(
            "funding_reversed", paymentReference=funding["_id"], taken=taken, shortfall=shortfall
        )

    def _repay_receivable(self, funding: dict[str, Any], reference: str) -> None:
        """A new credit first repays what an earlier reversal left owed, and lifts the
        restriction once nothing is owed. A retry (the credit replayed) finishes what an
        earlier run of this credit started: its repayment, or the lifting after it."""
        receivable = receivable_id(funding["userId"], funding["currency"])
        key = f"{credit_key(reference)}:repay"
        owed = -self.ledger.reads.balance(receivable)
        if owed > 0:
            repaid = min(owed, self.ledger.reads.available(funding["account"]))
            if repaid <= 0:
                return
            try:
                posted = self.ledger.post(
                    key,
                    [Posting(funding["account"], -repaid), Posting(receivable, repaid)],
                    kind="repayment",
                    reference=reference,
                    description="Repayment of a reversed funding",
                )
            except InsufficientFunds:
                raise Conflict(
                    "The wallet changed during the repayment; retry", code=ErrorCode.BUSY
                ) from None
            except IdempotencyConflict:
                return  # an earlier run repaid part, and `owed` (read after it) is still owed
            owed -= 0 if posted.replayed else repaid
        elif self.ledger.reads.entry(key) is None:
            return  # nothing owed, and this credit repaid nothing: not ours to lift
        if owed <= 0:
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

    def _set(
        self,
        funding: dict[str, Any],
        fields: dict[str, Any],
        decision: str | None = None,
        unset: tuple[str, ...] = (),
    ) -> None:
        update = _funding_update(fields, decision)
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        self.db.fundings.update_one({"_id": funding["_id"]}, update)


def _same_reserved_account(funding: dict[str, Any], transaction: Transaction) -> bool:
    """A transfer into a reserved account is credited to that account's owner only if
    the status API names the same account."""
    if "accountReference" not in funding:
        return True
    paid_into = (transaction.product_type, transaction.product_reference)
    return paid_into == (RESERVED_ACCOUNT, funding["accountReference"])


def _funding_update(fields: dict[str, Any], decision: str | None) -> dict[str, Any]:
    update: dict[str, Any] = {"$set": {**fields, "updatedAt": datetime.now(UTC)}}
    if decision:
        update["$push"] = {"decisions": {"at": datetime.now(UTC), "decision": decision}}
    return update


def _count_credit(funding: dict[str, Any], outcome: Outcome) -> None:
    amount, status = outcome.credited_minor, outcome.status
    log.info("funding_credited", paymentReference=funding["_id"], amount=amount, status=status)
    FUNDINGS_CONFIRMED.labels(funding["currency"], status).inc()
    AMOUNT_CREDITED.labels(funding["currency"]).inc(amount)
