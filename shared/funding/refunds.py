"""Refunds of a credited funding, started by an admin, paid out through Monnify.

The amount is first reserved on the funding (never more than was credited minus what
earlier refunds took), in the same transaction as the refund's record and the admin's
action, and held in the user's wallet; then Monnify's refund API is called
with our own unique refundReference. Monnify's verdict, from a SUCCESSFUL_REFUND or
FAILED_REFUND webhook or from polling its refund status API, settles the hold: a
completed refund captures it into the gateway clearing account (the money leaves through
Monnify), a failed one releases it. What Monnify refuses outright (its R-codes) releases
the hold at once and comes back as a 4xx.

The hold has no expiry: money Monnify may still pay out stays held until its verdict,
however late. A refund open longer than REFUND_REVIEW_AFTER_SECONDS is raised for review
(`overdue_refunds`): the poller logs it at error level and counts it, and the daily
reconciliation report lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import Int64, ObjectId
from pymongo import ASCENDING
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import PyMongoError

from shared.admin_actions import write_admin_action
from shared.errors import Conflict, DomainError, ErrorCode, NotFound, UpstreamUnavailable
from shared.funding import fundings
from shared.funding.repository import Change, FundingRepository
from shared.ledger import (
    HoldNotOpen,
    InsufficientFunds,
    Ledger,
    SystemAccount,
    system_account_id,
)
from shared.logs import get_logger
from shared.money import to_major
from shared.monnify.client import MonnifyClient
from shared.monnify.errors import (
    MonnifyError,
    MonnifyNotFound,
    MonnifyProtocolError,
    MonnifyRejected,
    MonnifyUnavailable,
)
from shared.monnify.models import RefundStatus

log = get_logger(__name__)

INITIATING = "initiating"  # held; Monnify has not (yet) acknowledged it
PENDING = "pending"  # Monnify acknowledged it and is processing it
COMPLETED = "completed"
FAILED = "failed"  # Monnify tried and failed: the hold was released
REJECTED = "rejected"  # refused before anything moved (the wallet, or Monnify's R-code)
OPEN_STATUSES = (INITIATING, PENDING)
STATUSES = (INITIATING, PENDING, COMPLETED, FAILED, REJECTED)

# An unanswered initiate is looked up only after this long, well past the client's
# timeouts, so the poller never races a request still on its way to Monnify.
UNANSWERED_AFTER_SECONDS = 300
RESERVED_BY_ANOTHER = "Another refund of this funding was just started; retry"
# Monnify's R-codes that mean "already exists" rather than "not allowed".
CONFLICT_CODES = ("R9",)


class RefundRefused(DomainError):
    """Monnify (or our own rules) refused the refund; nothing moved."""

    status = 422
    error = "Unprocessable Entity"
    code = ErrorCode.REFUND_REFUSED


class UnknownRefund(NotFound):
    """A refund notification names no refund of ours."""


@dataclass(frozen=True)
class RefundRequest:
    payment_reference: str
    amount_minor: int | None  # None: everything still refundable
    reason: str
    customer_note: str | None
    requested_by: ObjectId


def refund_key(refund_reference: str, step: str) -> str:
    return f"refund:{refund_reference}:{step}"


def new_refund_reference() -> str:
    return f"RFD-{ObjectId()}"


def refund_view(refund: dict[str, Any]) -> dict[str, Any]:
    """What the admin API shows of a refund."""
    return {
        "refundReference": refund["_id"],
        "paymentReference": refund["paymentReference"],
        "transactionReference": refund["transactionReference"],
        "amount": int(refund["amount"]),
        "currency": refund["currency"],
        "status": refund["status"],
        "reason": refund["reason"],
        "note": refund.get("note"),
        "createdAt": refund["createdAt"],
        "updatedAt": refund["updatedAt"],
    }


class Refunds:
    def __init__(self, db: Database, ledger: Ledger, monnify: MonnifyClient):
        self.db = db
        self.ledger = ledger
        self.monnify = monnify
        self.fundings = FundingRepository(db)

    # ---- starting a refund -----------------------------------------------------------

    def start(self, request: RefundRequest) -> dict[str, Any]:
        """Open the refund (recording the admin's action), then hold and send it. A
        refusal after it was opened names it (`refundReference` in its details): the
        refund's record says how it ended."""
        funding = self._refundable_funding(request.payment_reference)
        refund = self._open(funding, request)
        try:
            return self._send(refund, request)
        except DomainError as exc:
            exc.details = {**(exc.details or {}), "refundReference": refund["_id"]}
            raise

    def _send(self, refund: dict[str, Any], request: RefundRequest) -> dict[str, Any]:
        amount = int(refund["amount"])
        self._hold(refund)
        try:
            answer = self.monnify.initiate_refund(
                transaction_reference=refund["transactionReference"],
                refund_reference=refund["_id"],
                amount_minor=amount,
                reason=request.reason,
                currency=refund["currency"],
                customer_note=request.customer_note,
            )
        except (MonnifyUnavailable, MonnifyProtocolError):
            self._note(refund, "Monnify did not answer; its refund status will be checked")
            raise UpstreamUnavailable(
                "Monnify did not answer the refund request; the amount stays held and the "
                "refund's status will be checked with Monnify",
                {"refundReference": refund["_id"]},
            ) from None
        except MonnifyError as exc:  # a definite refusal: nothing was refunded
            self._abandon(refund, f"Monnify refused it: {exc.message}")
            raise _refused_by_monnify(exc, refund["_id"]) from None
        self._transition(refund, INITIATING, PENDING, "Monnify is processing it")
        log.info("refund_started", refundReference=refund["_id"], amount=amount)
        return self._apply(self._reload(refund["_id"]), answer.refund_status)

    def _refundable_funding(self, payment_reference: str) -> dict[str, Any]:
        funding = self.fundings.by_reference(payment_reference)
        if funding is None:
            raise NotFound(
                "No funding with this paymentReference", {"paymentReference": payment_reference}
            )
        if funding["status"] not in fundings.CREDITED_STATUSES:
            raise Conflict(
                f"Only a credited funding can be refunded; this one is {funding['status']}",
                {"paymentReference": payment_reference},
                code=ErrorCode.INVALID_STATE,
            )
        return funding

    def _open(self, funding: dict[str, Any], request: RefundRequest) -> dict[str, Any]:
        """Reserve the amount on the funding, record the refund and the admin's action,
        in one transaction: none is ever written without the others."""
        amount = self._refundable(funding, request.amount_minor)
        try:
            with self.db.client.start_session() as session, session.start_transaction():
                if not self.fundings.reserve_refund(funding, amount, session):
                    raise Conflict(RESERVED_BY_ANOTHER, code=ErrorCode.BUSY)
                refund = self._record(funding, amount, request, session)
                write_admin_action(
                    self.db,
                    session,
                    actor=str(request.requested_by),
                    action="refund_funding",
                    target=funding["_id"],
                    reason=request.reason,
                    details={"refundReference": refund["_id"], "amount": amount},
                )
        except PyMongoError as exc:
            if not exc.has_error_label("TransientTransactionError"):
                raise
            # Another refund's transaction wrote the funding first.
            raise Conflict(RESERVED_BY_ANOTHER, code=ErrorCode.BUSY) from None
        return refund

    @staticmethod
    def _refundable(funding: dict[str, Any], amount: int | None) -> int:
        """The amount to refund (None: all that is left), if what was credited allows."""
        credited = int(funding["amountCredited"])
        already = int(funding.get("amountRefunded", 0))
        remaining = credited - already
        if remaining <= 0:
            raise Conflict(
                "This funding has already been refunded in full", code=ErrorCode.INVALID_STATE
            )
        amount = remaining if amount is None else amount
        if amount > remaining:
            raise RefundRefused(
                f"At most {to_major(remaining)} of this funding can still be refunded",
                {"refundable": to_major(remaining)},
            )
        return amount

    def _record(
        self,
        funding: dict[str, Any],
        amount: int,
        request: RefundRequest,
        session: ClientSession,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        refund = {
            "_id": new_refund_reference(),
            "paymentReference": funding["_id"],
            "transactionReference": funding["transactionReference"],
            "userId": funding["userId"],
            "account": funding["account"],
            "currency": funding["currency"],
            "amount": Int64(amount),
            "reason": request.reason,
            "customerNote": request.customer_note,
            "requestedBy": request.requested_by,
            "status": INITIATING,
            "createdAt": now,
            "updatedAt": now,
        }
        self.db.refunds.insert_one(refund, session=session)
        return refund

    def _hold(self, refund: dict[str, Any]) -> None:
        try:
            self.ledger.hold(
                refund_key(refund["_id"], "hold"),
                refund["account"],
                int(refund["amount"]),
                None,  # never expires: released or captured on Monnify's verdict only
                hold_id=refund_key(refund["_id"], "hold"),
                reference=refund["transactionReference"],
            )
        except InsufficientFunds as exc:
            self._abandon(refund, "the wallet's available balance could not cover it", hold=False)
            available = (exc.details or {}).get("available")
            raise InsufficientFunds(
                f"The wallet's available balance ({to_major(int(available or 0))}) cannot "
                f"cover a refund of {to_major(int(refund['amount']))}; nothing was refunded",
                {"available": to_major(int(available or 0))},
            ) from None
        except DomainError:  # the wallet busy, say: nothing held, so nothing reserved
            self._abandon(refund, "the amount could not be held", hold=False)
            raise

    # ---- settling a refund (webhook or poller) ---------------------------------------

    def settle(self, refund_reference: str | None) -> str:
        """Follow Monnify's refund status API; returns the refund's status after."""
        refund = self.db.refunds.find_one({"_id": refund_reference}) if refund_reference else None
        if refund is None:
            raise UnknownRefund(
                "No refund matches this notification", {"refundReference": refund_reference}
            )
        if refund["status"] not in OPEN_STATUSES:
            return refund["status"]
        try:
            answer = self.monnify.get_refund(refund["_id"], refund["currency"])
        except MonnifyNotFound:
            return self._not_at_monnify(refund)
        if refund["status"] == INITIATING:
            self._transition(refund, INITIATING, PENDING, "found at Monnify")
            refund = self._reload(refund["_id"])
        return self._apply(refund, answer.refund_status)["status"]

    def refunds_to_poll(self, limit: int = 100) -> list[str]:
        """Open refunds whose verdict we have not heard: acknowledged ones, and
        unanswered ones old enough that no request for them is still in flight."""
        unanswered_before = datetime.now(UTC) - timedelta(seconds=UNANSWERED_AFTER_SECONDS)
        # Two queries on refunds_by_status (status, updatedAt), each least recently
        # updated first, instead of one $or the embedded server would answer with a scan.
        acknowledged = self._open_refunds({"status": PENDING}, limit)
        unanswered = self._open_refunds(
            {"status": INITIATING, "updatedAt": {"$lte": unanswered_before}},
            limit - len(acknowledged),
        )
        return acknowledged + unanswered

    def _open_refunds(self, selector: dict[str, Any], limit: int) -> list[str]:
        if limit <= 0:
            return []
        cursor = (
            self.db.refunds.find(selector, {"_id": 1}).sort("updatedAt", ASCENDING).limit(limit)
        )
        return [refund["_id"] for refund in cursor]

    def _not_at_monnify(self, refund: dict[str, Any]) -> str:
        if refund["status"] == INITIATING:  # the request never reached Monnify
            self._abandon(refund, "Monnify has no such refund: it was never made")
            return REJECTED
        log.error("refund_discrepancy", refundReference=refund["_id"], reason="unknown to Monnify")
        return refund["status"]

    def _apply(self, refund: dict[str, Any], status: RefundStatus) -> dict[str, Any]:
        if status is RefundStatus.COMPLETED:
            self._capture(refund)
        elif status is RefundStatus.FAILED:
            self._release(refund, FAILED, "Monnify reports the refund failed")
        return self._reload(refund["_id"])

    def _capture(self, refund: dict[str, Any]) -> None:
        amount = int(refund["amount"])
        clearing = system_account_id(SystemAccount.GATEWAY_CLEARING, refund["currency"])
        try:
            self.ledger.capture(
                refund_key(refund["_id"], "capture"),
                refund_key(refund["_id"], "hold"),
                amount,
                destinations=[(clearing, amount)],
                reference=refund["transactionReference"],
                description="Refund via Monnify",
            )
        except HoldNotOpen:
            log.error("refund_discrepancy", refundReference=refund["_id"], reason="hold not open")
            return
        if self._transition(refund, refund["status"], COMPLETED, "Monnify completed the refund"):
            self.fundings.apply(
                Change(
                    refund["paymentReference"],
                    decision=f"refund {refund['_id']} of {amount} completed",
                )
            )
            log.info("refund_completed", refundReference=refund["_id"], amount=amount)

    def _release(self, refund: dict[str, Any], status: str, note: str) -> None:
        try:
            self.ledger.release(
                refund_key(refund["_id"], "release"), refund_key(refund["_id"], "hold")
            )
        except HoldNotOpen:
            log.error("refund_discrepancy", refundReference=refund["_id"], reason="hold not open")
            return
        except NotFound:
            pass  # stopped before the hold was placed: there is nothing to release
        if self._transition(refund, refund["status"], status, note):
            self._unreserve(refund)
        log.info("refund_closed", refundReference=refund["_id"], status=status)

    def _abandon(self, refund: dict[str, Any], note: str, *, hold: bool = True) -> None:
        """Nothing was refunded: give the hold and the reservation back."""
        if hold:
            self._release(refund, REJECTED, note)
        elif self._transition(refund, refund["status"], REJECTED, note):
            self._unreserve(refund)

    # ---- records ---------------------------------------------------------------------

    def _transition(self, refund: dict[str, Any], before: str, after: str, note: str) -> bool:
        """Move the refund from `before` to `after`; False if another path moved it first."""
        result = self.db.refunds.update_one(
            {"_id": refund["_id"], "status": before},
            {"$set": {"status": after, "note": note, "updatedAt": datetime.now(UTC)}},
        )
        return result.modified_count == 1

    def _note(self, refund: dict[str, Any], note: str) -> None:
        self.db.refunds.update_one(
            {"_id": refund["_id"]}, {"$set": {"note": note, "updatedAt": datetime.now(UTC)}}
        )

    def _unreserve(self, refund: dict[str, Any]) -> None:
        self.fundings.unreserve_refund(refund["paymentReference"], int(refund["amount"]))

    def _reload(self, refund_reference: str) -> dict[str, Any]:
        return self.db.refunds.find_one({"_id": refund_reference})


def overdue_refunds(db: Database, older_than_seconds: int) -> list[dict[str, Any]]:
    """Refunds still open `older_than_seconds` after they started, oldest first: each
    holds money Monnify may yet pay out, so a person must find out why. Served by
    refunds_by_age."""
    started_before = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    fields = {"amount": 1, "currency": 1, "status": 1, "createdAt": 1, "reviewRaisedAt": 1}
    # One query per status: the embedded server answers an $in beside a range with a scan.
    found = [
        refund
        for status in OPEN_STATUSES
        for refund in db.refunds.find(
            {"status": status, "createdAt": {"$lte": started_before}}, fields
        )
    ]
    return sorted(found, key=lambda refund: refund["createdAt"])


def _refused_by_monnify(exc: MonnifyError, refund_reference: str) -> DomainError:
    if not isinstance(exc, MonnifyRejected):
        return exc  # our credentials refused: a configuration problem, answered as 502
    code = exc.response_code or "unknown"
    details = {"monnifyResponseCode": code, "refundReference": refund_reference}
    message = f"Monnify refused the refund ({code}): {exc.message}"
    if code in CONFLICT_CODES:
        return Conflict(message, details)
    return RefundRefused(message, details)
