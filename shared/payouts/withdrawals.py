"""Withdrawals: a wallet's money paid out to the user's bank account through Monnify's
single transfer (a disbursement).

1. The request (gateway) records the withdrawal, adds it to the user's daily total and
   holds amount + fee in the wallet (a restricted wallet is refused in the same
   conditional write). The hold has no expiry: it must not lapse while Monnify has the
   money in flight. A refused request leaves nothing behind.
2. A task sends the transfer with our reference, which Monnify keeps unique. An attempt
   is counted before it is sent, and a withdrawal with an attempt counted is looked up
   (`GET .../summary`) before anything else is sent: an answer lost to a timeout never
   becomes a second transfer.
3. Monnify's verdict settles the hold: SUCCESS captures it (the amount to the gateway
   clearing account, the money having left through Monnify, the fee to platform
   revenue), FAILED/EXPIRED releases it, PENDING waits, PENDING_AUTHORIZATION waits for
   the user's OTP. Webhooks are only a cue: each is checked with the summary endpoint.
   A REVERSED transfer after success credits the wallet back, amount and fee, under
   its own key. A poller asks about withdrawals that heard nothing for a while.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import Int64, ObjectId
from pymongo.database import Database

from shared.errors import Conflict, DomainError, Forbidden, NotFound
from shared.funding.fundings import stored_answer
from shared.ledger import HoldNotOpen, InsufficientFunds, Ledger, Posting, SystemAccount
from shared.ledger import system_account_id as system_account
from shared.ledger.accounts import open_wallet
from shared.logs import get_logger
from shared.money import check_amount_bounds, to_major
from shared.monnify.client import MonnifyClient
from shared.monnify.disbursements import Disbursement, DisbursementStatus
from shared.monnify.errors import (
    MonnifyError,
    MonnifyNotFound,
    MonnifyProtocolError,
    MonnifyRejected,
    MonnifyUnavailable,
)
from shared.payouts.banks import payout_account
from shared.payouts.config import PayoutPolicy
from shared.payouts.repository import WithdrawalRepository, new_reference

log = get_logger(__name__)

INITIATING = "initiating"  # recorded; the hold not yet placed (the request in progress)
PENDING = "pending"  # held; Monnify has not (yet) answered the transfer
PROCESSING = "processing"  # Monnify accepted it and is paying it out
AWAITING_AUTHORIZATION = "awaiting_authorization"  # Monnify waits for the OTP
SUCCESSFUL = "successful"
FAILED = "failed"
REVERSED = "reversed"
OPEN = (PENDING, PROCESSING, AWAITING_AUTHORIZATION)
# Monnify's answer to a reference it already has: look it up instead.
DUPLICATE_CODES = ("D02",)
NARRATION = "Wallet withdrawal"
# A request still initiating after this long has stopped (its process died).
ABANDON_AFTER_SECONDS = 600


class UnknownWithdrawal(NotFound):
    """A disbursement notification names no withdrawal of ours."""


class WithdrawalRefused(DomainError):
    """Monnify refused the OTP, or our limits refuse the withdrawal."""

    status = 422
    error = "Unprocessable Entity"


@dataclass(frozen=True)
class WithdrawalRequest:
    user_id: ObjectId
    amount_minor: int
    currency: str
    idempotency_key: str

    def fingerprint(self) -> str:
        canonical = json.dumps({"amount": self.amount_minor, "currency": self.currency})
        return hashlib.sha256(canonical.encode()).hexdigest()


def withdrawal_key(reference: str, step: str) -> str:
    return f"withdrawal:{reference}:{step}"


def view(withdrawal: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of a withdrawal (amounts in minor units; the schema converts)."""
    return {
        "reference": withdrawal["reference"],
        "status": withdrawal["status"] if withdrawal["status"] != INITIATING else PENDING,
        "amount": int(withdrawal["amount"]),
        "fee": int(withdrawal["fee"]),
        "currency": withdrawal["currency"],
        "destination": withdrawal["destination"],
        "note": withdrawal.get("note"),
        "createdAt": withdrawal["createdAt"],
        "updatedAt": withdrawal["updatedAt"],
    }


class Withdrawals:
    def __init__(self, db: Database, ledger: Ledger, monnify: MonnifyClient, policy: PayoutPolicy):
        self.db = db
        self.ledger = ledger
        self.monnify = monnify
        self.policy = policy
        self.repo = WithdrawalRepository(db)

    # ---- the request (gateway) ---------------------------------------------------------

    def request(self, request: WithdrawalRequest) -> dict[str, Any]:
        """Hold the money and record the withdrawal; returns the 202 answer (the first
        answer again for a repeated Idempotency-Key). The caller then enqueues `send`."""
        check_amount_bounds(request.amount_minor, self.policy.minimum, self.policy.maximum)
        replay = self._replay(request)
        if replay is not None:
            return replay
        withdrawal = self._record(request, payout_account(self.db, request.user_id))
        if not self.repo.insert(withdrawal):  # a racing request with the same key
            replay = self._replay(request)
            if replay is None:
                raise Conflict("A request with this Idempotency-Key failed; retry it")
            return replay
        try:
            self._reserve_daily(withdrawal)
            self._hold(withdrawal)
        except DomainError:
            self.repo.delete(withdrawal["reference"])
            raise
        answer = view({**withdrawal, "status": PENDING})
        if (
            self.repo.transition(
                withdrawal["reference"], PENDING, before=INITIATING, response=answer
            )
            is None
        ):
            self.fail(withdrawal, FAILED, "The request was abandoned", expected=INITIATING)
            raise Conflict("The request took too long and was abandoned; retry it")
        log.info("withdrawal_requested", reference=withdrawal["reference"], amount=answer["amount"])
        return answer

    def _replay(self, request: WithdrawalRequest) -> dict[str, Any] | None:
        withdrawal = self.repo.by_key(request.user_id, request.idempotency_key)
        return stored_answer(withdrawal, request.fingerprint(), request.idempotency_key)

    def _record(self, request: WithdrawalRequest, destination: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as Mongo keeps it
        oid, reference = new_reference()
        return {
            "_id": oid,
            "reference": reference,
            "userId": request.user_id,
            "account": open_wallet(self.db, request.user_id, request.currency),
            "idempotencyKey": request.idempotency_key,
            "fingerprint": request.fingerprint(),
            "amount": Int64(request.amount_minor),
            "fee": Int64(self.policy.fee),
            "currency": request.currency,
            "destination": {k: destination[k] for k in _DESTINATION_FIELDS},
            "day": now.date().isoformat(),
            "status": INITIATING,
            "open": True,  # until a final status (the repository's transitions)
            "sendAttempts": 0,
            "createdAt": now,
            "updatedAt": now,
        }

    def _reserve_daily(self, withdrawal: dict[str, Any]) -> None:
        maximum = self.policy.daily_maximum
        amount = int(withdrawal["amount"])
        if not self.repo.reserve_daily(withdrawal["userId"], withdrawal["day"], amount, maximum):
            raise WithdrawalRefused(
                f"This withdrawal would pass the daily limit of {to_major(maximum)}",
                {"dailyLimit": to_major(maximum)},
            )

    def _hold(self, withdrawal: dict[str, Any]) -> None:
        reference = withdrawal["reference"]
        total = int(withdrawal["amount"]) + int(withdrawal["fee"])
        try:
            self.ledger.hold(
                withdrawal_key(reference, "hold"),
                withdrawal["account"],
                total,
                None,  # never expires: released or captured by Monnify's verdict
                hold_id=withdrawal_key(reference, "hold"),
                reference=reference,
                refuse_restricted=True,
            )
        except DomainError as exc:
            self._unreserve_daily(withdrawal)
            if isinstance(exc, InsufficientFunds):
                raise self._refusal(withdrawal, total) from None
            raise

    def _refusal(self, withdrawal: dict[str, Any], total: int) -> DomainError:
        """Why the hold was refused: a restricted wallet, or too little available."""
        wallet = self.ledger.reads.wallet(withdrawal["account"])
        if wallet.restricted:
            return Forbidden("This wallet is restricted: it cannot withdraw")
        return InsufficientFunds(
            f"The available balance ({to_major(wallet.available)}) cannot cover "
            f"{to_major(total)} (amount plus a fee of {to_major(int(withdrawal['fee']))})",
            {"available": to_major(wallet.available), "required": to_major(total)},
        )

    # ---- the transfer (worker) ---------------------------------------------------------

    def send(self, reference: str) -> str:
        """Send the transfer, or learn its fate if an earlier attempt may have reached
        Monnify; returns the status after (PENDING: ask again later)."""
        withdrawal = self._get(reference)
        if withdrawal["status"] != PENDING:
            return withdrawal["status"]
        attempts = int(withdrawal.get("sendAttempts", 0))
        if attempts:
            found = self._look_up(withdrawal)
            if found is not None:
                return self._apply(withdrawal, found)
        if not self.repo.claim_send(reference, attempts, PENDING):
            return PENDING  # another task is sending it; it will settle it
        try:
            answer = self._send(withdrawal)
        except (MonnifyUnavailable, MonnifyProtocolError):
            self.repo.note(reference, "Monnify's answer is unknown; it will be looked up")
            log.warning("withdrawal_outcome_unknown", reference=reference)
            return PENDING
        except MonnifyRejected as exc:
            if exc.response_code in DUPLICATE_CODES:
                found = self._look_up(withdrawal)
                return PENDING if found is None else self._apply(withdrawal, found)
            return self.fail(withdrawal, FAILED, f"Monnify refused it: {exc.message}")
        return self._apply(withdrawal, answer)

    def _send(self, withdrawal: dict[str, Any]) -> Disbursement:
        destination = withdrawal["destination"]
        return self.monnify.send_disbursement(
            reference=withdrawal["reference"],
            amount_minor=int(withdrawal["amount"]),
            currency=withdrawal["currency"],
            bank_code=destination["bankCode"],
            account_number=destination["accountNumber"],
            account_name=destination["accountName"],
            narration=NARRATION,
            source_account_number=self.policy.wallet_account_number,
        )

    def settle(self, reference: str | None) -> str:
        """Follow Monnify's summary of the transfer (a webhook's cue, or the poller)."""
        withdrawal = self.repo.by_reference(reference) if reference else None
        if withdrawal is None:
            raise UnknownWithdrawal(
                "No withdrawal matches this notification", {"reference": reference}
            )
        if withdrawal["status"] in (INITIATING, FAILED, REVERSED):
            return withdrawal["status"]
        if withdrawal["status"] == PENDING and not withdrawal.get("sendAttempts"):
            return PENDING  # not sent yet: the send task (or the poller) sends it
        found = self._look_up(withdrawal)
        if found is None:
            if withdrawal["status"] != PENDING:
                log.error("withdrawal_discrepancy", reference=reference, reason="not at Monnify")
            return withdrawal["status"]
        return self._apply(withdrawal, found)

    def authorize(self, user_id: ObjectId, reference: str, otp: str) -> dict[str, Any]:
        """The OTP of a transfer Monnify holds for authorization."""
        withdrawal = self.owned(user_id, reference)
        if withdrawal["status"] != AWAITING_AUTHORIZATION:
            raise Conflict(f"This withdrawal is {withdrawal['status']}, not awaiting an OTP")
        try:
            answer = self.monnify.authorize_disbursement(
                reference, otp, currency=withdrawal["currency"]
            )
        except MonnifyRejected as exc:
            raise WithdrawalRefused(f"Monnify refused the OTP: {exc.message}") from None
        self._apply(withdrawal, answer)
        return view(self._get(reference))

    def owned(self, user_id: ObjectId, reference: str) -> dict[str, Any]:
        """The user's withdrawal; another user's is as unknown as a made-up one."""
        withdrawal = self.repo.by_reference(reference)
        if withdrawal is None or withdrawal["userId"] != user_id:
            raise NotFound("No such withdrawal", {"reference": reference})
        return withdrawal

    def poll(self, limit: int = 100) -> dict[str, int]:
        """Withdrawals that heard nothing for `poll_after_seconds`: send what was never
        sent, ask Monnify about the rest, give up requests that never completed."""
        before = datetime.now(UTC) - timedelta(seconds=self.policy.poll_after_seconds)
        counts = {"abandoned": 0, "sent": 0, "checked": 0}
        stopped_before = datetime.now(UTC) - timedelta(seconds=ABANDON_AFTER_SECONDS)
        for withdrawal in self.repo.quiet_since(INITIATING, stopped_before, limit):
            self._abandon(withdrawal)
            counts["abandoned"] += 1
        for status in OPEN:
            for withdrawal in self.repo.quiet_since(status, before, limit):
                unsent = status == PENDING and not withdrawal.get("sendAttempts")
                # `send` looks a sent one up first, and sends again only what Monnify lacks.
                step = self.send if status == PENDING else self.settle
                outcome = _outcome(step, withdrawal["reference"])
                counts["sent" if unsent else "checked"] += 1
                if outcome in OPEN:  # asked again after another quiet period
                    self.repo.note(withdrawal["reference"], f"still {outcome} at Monnify")
        return counts

    # ---- verdicts --------------------------------------------------------------------

    def _look_up(self, withdrawal: dict[str, Any]) -> Disbursement | None:
        """Monnify's record of the transfer; None if it has none (never received)."""
        try:
            found = self.monnify.disbursement_summary(
                withdrawal["reference"], withdrawal["currency"]
            )
        except MonnifyNotFound:
            return None
        if found.amount_minor != int(withdrawal["amount"]):
            raise MonnifyProtocolError(
                f"Monnify reports {found.amount_minor} for a transfer of {withdrawal['amount']}"
            )
        return found

    def _apply(self, withdrawal: dict[str, Any], answer: Disbursement) -> str:
        reference = withdrawal["reference"]
        status = answer.status
        if status is DisbursementStatus.SUCCESS:
            return self._succeed(withdrawal)
        if status.failed:
            return self.fail(withdrawal, FAILED, f"Monnify reports the transfer {status.lower()}")
        if status is DisbursementStatus.REVERSED:
            if withdrawal["status"] == SUCCESSFUL:
                return self._reverse(withdrawal)
            return self.fail(withdrawal, REVERSED, "Monnify reversed the transfer")
        if withdrawal["status"] not in OPEN:
            return withdrawal["status"]
        waiting = (
            AWAITING_AUTHORIZATION
            if status is DisbursementStatus.PENDING_AUTHORIZATION
            else PROCESSING
        )
        if withdrawal["status"] != waiting:
            self.repo.transition(reference, waiting, note=f"Monnify: {status.value}")
        return waiting

    def _succeed(self, withdrawal: dict[str, Any]) -> str:
        if withdrawal["status"] not in OPEN:
            return withdrawal["status"]
        reference = withdrawal["reference"]
        amount, fee = int(withdrawal["amount"]), int(withdrawal["fee"])
        currency = withdrawal["currency"]
        try:
            self.ledger.capture(
                withdrawal_key(reference, "capture"),
                withdrawal_key(reference, "hold"),
                amount + fee,
                [
                    (system_account(SystemAccount.GATEWAY_CLEARING, currency), amount),
                    (system_account(SystemAccount.PLATFORM_REVENUE, currency), fee),
                ],
                account=withdrawal["account"],
                reference=reference,
                description="Withdrawal to bank account",
            )
        except HoldNotOpen:
            log.error("withdrawal_discrepancy", reference=reference, reason="hold not open")
            return withdrawal["status"]
        self.repo.transition(reference, SUCCESSFUL, final=True, note="Paid out by Monnify")
        log.info("withdrawal_paid", reference=reference, amount=amount)
        return SUCCESSFUL

    def fail(
        self, withdrawal: dict[str, Any], status: str, note: str, *, expected: str | None = None
    ) -> str:
        """Nothing left the merchant wallet: the hold goes back to the wallet.
        `expected`: the status the caller knows the withdrawal had (else the one read)."""
        if (expected or withdrawal["status"]) not in (*OPEN, INITIATING):
            return withdrawal["status"]
        reference = withdrawal["reference"]
        try:
            self.ledger.release(
                withdrawal_key(reference, "release"),
                withdrawal_key(reference, "hold"),
                account=withdrawal["account"],
            )
        except HoldNotOpen:
            log.error("withdrawal_discrepancy", reference=reference, reason="hold not open")
            return withdrawal["status"]
        except NotFound:
            pass  # stopped before the hold was placed: there is nothing to release
        if self.repo.transition(reference, status, final=True, note=note) is not None:
            self._unreserve_daily(withdrawal)
        log.info("withdrawal_closed", reference=reference, status=status)
        return status

    def _reverse(self, withdrawal: dict[str, Any]) -> str:
        """The bank sent a paid-out transfer back: the wallet gets amount and fee again."""
        reference = withdrawal["reference"]
        amount, fee = int(withdrawal["amount"]), int(withdrawal["fee"])
        currency = withdrawal["currency"]
        postings = [
            Posting(system_account(SystemAccount.GATEWAY_CLEARING, currency), -amount),
            Posting(withdrawal["account"], amount + fee),
        ]
        if fee:  # the fee comes back too: the user got nothing for it
            postings.append(Posting(system_account(SystemAccount.PLATFORM_REVENUE, currency), -fee))
        self.ledger.post(
            withdrawal_key(reference, "reversal"),
            postings,
            kind="credit",
            reference=reference,
            description="Withdrawal reversed by the bank",
        )
        note = "Monnify reversed the transfer"
        self.repo.transition(reference, REVERSED, before=SUCCESSFUL, note=note)
        log.warning("withdrawal_reversed", reference=reference, amount=amount)
        return REVERSED

    def _abandon(self, withdrawal: dict[str, Any]) -> None:
        """A request that stopped before answering (long past any request's lifetime):
        nothing was sent, so whatever it held goes back."""
        self.fail(withdrawal, FAILED, "The request did not complete; nothing was sent")

    def _unreserve_daily(self, withdrawal: dict[str, Any]) -> None:
        self.repo.unreserve_daily(
            withdrawal["userId"], withdrawal["day"], int(withdrawal["amount"])
        )

    def _get(self, reference: str) -> dict[str, Any]:
        withdrawal = self.repo.by_reference(reference)
        if withdrawal is None:
            raise NotFound("No such withdrawal", {"reference": reference})
        return withdrawal


_DESTINATION_FIELDS = ("bankCode", "bankName", "accountNumber", "accountName")


def _outcome(step: Any, reference: str) -> str:
    """One poll's outcome; a Monnify outage leaves it for the next poll."""
    try:
        return step(reference)
    except MonnifyError as exc:
        log.warning("withdrawal_poll_failed", reference=reference, error=type(exc).__name__)
        return PENDING
