"""Processing stored webhook events: what each type asks for (the inbox decides, from
its outcome, when to try again).

A batch of claimed events is processed together: its transaction events confirmed in one
`confirm_many` (one look-up of fundings, concurrent status calls, one group commit), the
rest one by one. Each event still gets its own outcome and its own retries.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from shared.errors import DomainError, refusal_or_result
from shared.funding import inbox, refunds, reserved_accounts
from shared.funding.confirmation import Answer, FundingConfirmer, Notice, UnknownFunding
from shared.funding.inbox import EventOutcome
from shared.funding.refunds import Refunds, UnknownRefund
from shared.payouts.withdrawals import OPEN as OPEN_WITHDRAWAL
from shared.payouts.withdrawals import UnknownWithdrawal, Withdrawals

TRANSACTION_EVENTS = ("SUCCESSFUL_TRANSACTION", "LEGACY_TRANSACTION")
REFUND_EVENTS = ("SUCCESSFUL_REFUND", "FAILED_REFUND")
DISBURSEMENT_EVENTS = ("SUCCESSFUL_DISBURSEMENT", "FAILED_DISBURSEMENT", "REVERSED_DISBURSEMENT")


def process_batch(
    confirmer: FundingConfirmer,
    refunder: Refunds,
    batch: list[dict[str, Any]],
    withdrawals: Withdrawals | None = None,
) -> dict[ObjectId, EventOutcome]:
    """The outcome of each claimed event; nothing is written to the events here."""
    transactions = [e for e in batch if e.get("eventType") in TRANSACTION_EVENTS]
    outcomes = _confirm_transactions(confirmer, transactions)
    for event in batch:
        if event["_id"] in outcomes:
            continue
        if event.get("eventType") in DISBURSEMENT_EVENTS and withdrawals is not None:
            outcome = refusal_or_result(_settle_withdrawal, withdrawals, event)
            outcomes[event["_id"]] = (
                _failure(outcome) if isinstance(outcome, DomainError) else outcome
            )
        else:
            outcomes[event["_id"]] = _other_event(refunder, event)
    return outcomes


def _confirm_transactions(
    confirmer: FundingConfirmer, events: list[dict[str, Any]]
) -> dict[ObjectId, EventOutcome]:
    if not events:
        return {}
    # A transfer into a reserved account has no funding of ours until now.
    reserved_accounts.record_transfers(confirmer.db, reserved_accounts.transfers_in(events))
    notices = [Notice(e.get("paymentReference"), e.get("transactionReference")) for e in events]
    answers = confirmer.confirm_many(notices)
    return {e["_id"]: _transaction_outcome(a) for e, a in zip(events, answers, strict=True)}


def _transaction_outcome(answer: Answer) -> EventOutcome:
    if isinstance(answer, UnknownFunding):
        return EventOutcome(inbox.UNMATCHED, answer.message)
    if isinstance(answer, DomainError):  # Monnify down or odd, or the wallet busy
        return _failure(answer)
    if not answer.settled:
        return EventOutcome(
            inbox.RECEIVED, "Monnify does not report it paid yet", retry_or=inbox.UNCONFIRMED
        )
    return EventOutcome(inbox.PROCESSED, f"funding {answer.status}")


def _other_event(refunder: Refunds, event: dict[str, Any]) -> EventOutcome:
    if event.get("eventType") not in REFUND_EVENTS:
        return EventOutcome(inbox.IGNORED, f"event type {event.get('eventType')!r}")
    outcome = refusal_or_result(_settle_refund, refunder, event)
    return _failure(outcome) if isinstance(outcome, DomainError) else outcome


def _settle_refund(refunder: Refunds, event: dict[str, Any]) -> EventOutcome:
    """Refund notifications, like payments, are only a cue: the refund status API decides."""
    try:
        status = refunder.settle(event.get("refundReference"))
    except UnknownRefund as exc:
        return EventOutcome(inbox.UNMATCHED, exc.message)
    if status in refunds.OPEN_STATUSES:
        return EventOutcome(
            inbox.RECEIVED,
            "Monnify does not report the refund final yet",
            retry_or=inbox.UNCONFIRMED,
        )
    return EventOutcome(inbox.PROCESSED, f"refund {status}")


def _settle_withdrawal(withdrawals: Withdrawals, event: dict[str, Any]) -> EventOutcome:
    """Disbursement notifications too are only a cue: the summary endpoint decides."""
    try:
        status = withdrawals.settle(_disbursement_reference(event))
    except UnknownWithdrawal as exc:
        return EventOutcome(inbox.UNMATCHED, exc.message)
    if status in OPEN_WITHDRAWAL:
        return EventOutcome(
            inbox.RECEIVED,
            "Monnify does not report the transfer final yet",
            retry_or=inbox.UNCONFIRMED,
        )
    return EventOutcome(inbox.PROCESSED, f"withdrawal {status}")


def _disbursement_reference(event: dict[str, Any]) -> str | None:
    """Our withdrawal reference: eventData.reference (transactionReference is Monnify's)."""
    body = inbox.parse_body(event.get("body", "").encode())
    data = (body or {}).get("eventData")
    reference = data.get("reference") if isinstance(data, dict) else None
    return reference if isinstance(reference, str) else None


def _failure(exc: DomainError) -> EventOutcome:
    return EventOutcome(inbox.RECEIVED, f"{type(exc).__name__}: {exc}", retry_or=inbox.FAILED)
