"""Reconciliation with Monnify: what webhooks missed (the daily report is
`shared.funding.daily_report`).

- Open fundings older than a configured age are confirmed with the status API, so a
  missed webhook costs nothing and expired ones are closed.
- Recently credited fundings are confirmed again now and then: Monnify sends no event
  when it reverses a payment, so this is how a reversal is found.
- Transfers into reserved accounts whose webhook never came are found in each account's
  transaction list (`scan_reserved_accounts`) and confirmed like any funding.
- Open refunds are looked up with the refund status API, in case their webhook never came;
  one still open past REFUND_REVIEW_AFTER_SECONDS is raised for review.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.database import Database

from shared.errors import DomainError
from shared.funding import fundings, inbox, refunds, reserved_accounts
from shared.funding.confirmation import FundingConfirmer, Outcome
from shared.funding.refunds import Refunds, overdue_refunds
from shared.funding.repository import Change, FundingRepository
from shared.logs import get_logger
from shared.metrics import REFUNDS_OVERDUE
from shared.monnify.errors import MonnifyError, MonnifyNotFound

log = get_logger(__name__)

BATCH = 200
_OPEN_FIELDS = {"_id": 1, "status": 1, "reconciledAt": 1}
_RECHECK_FIELDS = {"_id": 1, "status": 1, "confirmedAt": 1}
_NEVER = datetime.min.replace(tzinfo=UTC)
_CLOSED = (fundings.EXPIRED, fundings.FAILED)


@dataclass
class Tally:
    """What one reconciliation pass did."""

    checked: int = 0
    credited: int = 0
    reversed: int = 0
    closed: int = 0
    still_open: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Reconciler:
    def __init__(self, db: Database, confirmer: FundingConfirmer, refunder: Refunds):
        self.db = db
        self.confirmer = confirmer
        self.refunder = refunder
        self.fundings = FundingRepository(db)

    def settle_open_fundings(self, older_than_seconds: int) -> Tally:
        """Confirm fundings still open after `older_than_seconds`, least recently checked
        first."""
        cutoff = _now() - timedelta(seconds=older_than_seconds)
        candidates = [
            funding
            for status in fundings.OPEN_STATUSES
            for funding in self.fundings.open_since(status, cutoff, _OPEN_FIELDS, BATCH)
        ]
        # Ordered here: a sort on reconciledAt, outside (status, createdAt), would walk
        # the collection on the embedded server.
        candidates.sort(key=_last_checked)
        tally = Tally()
        for funding in candidates[:BATCH]:
            self._check(funding, tally)
            self.fundings.mark_checked(funding["_id"])
        _log_pass(tally)
        return tally

    def recheck_credited_fundings(self, *, lookback_seconds: int, every_seconds: int) -> Tally:
        """Confirm again credited fundings whose recheck is due (oldest due first): a
        REVERSED status then takes the money back. A credit is due at once, then every
        `every_seconds` while it was confirmed within `lookback_seconds`."""
        now = _now()
        lookback = timedelta(seconds=lookback_seconds)
        tally = Tally()
        for funding in self.fundings.due_for_recheck(now, _RECHECK_FIELDS, BATCH):
            if not _within_lookback(funding, now - lookback):
                self.fundings.stop_rechecking(funding["_id"])
                continue
            self._check(funding, tally)
            self.fundings.mark_checked(funding["_id"])
            self._schedule_recheck(funding, now + timedelta(seconds=every_seconds), lookback)
        _log_pass(tally)
        return tally

    def scan_reserved_accounts(self) -> Tally:
        """Transfers into reserved accounts that no webhook brought: each due account's
        transaction list read down to what the last reading saw, every transfer not yet
        credited confirmed (and so credited once) like any funding."""
        tally = Tally()
        for account in reserved_accounts.due_for_scan(self.db, BATCH):
            try:
                scan = reserved_accounts.transfers_since(self.confirmer.monnify, account)
            except MonnifyError as exc:  # the next pass reads it again
                tally.errors += 1
                log.warning(
                    "reserved_account_scan_failed", accountReference=account["_id"], error=str(exc)
                )
                continue
            for payment_reference in reserved_accounts.record_transfers(self.db, scan.transfers):
                self._check({"_id": payment_reference}, tally)
                self.fundings.mark_checked(payment_reference)
            reserved_accounts.finish_scan(self.db, account, scan)
        _log_pass(tally)
        return tally

    def poll_refunds(self, *, review_after_seconds: int) -> Tally:
        """Settle open refunds from Monnify's refund status API, then raise those still
        open after `review_after_seconds` for review."""
        tally = Tally()
        for refund_reference in self.refunder.refunds_to_poll(BATCH):
            tally.checked += 1
            try:
                status = self.refunder.settle(refund_reference)
            except DomainError as exc:  # one refund's trouble doesn't stop the pass
                tally.errors += 1
                log.warning("refund_poll_failed", refundReference=refund_reference, error=str(exc))
                continue
            tally.still_open += status in refunds.OPEN_STATUSES
            tally.closed += status not in refunds.OPEN_STATUSES
        self._raise_overdue_refunds(review_after_seconds)
        return tally

    def _raise_overdue_refunds(self, review_after_seconds: int) -> None:
        """Each overdue refund logged at error level once (when first found); the gauge
        says how many there are now, for an alert that stays up until they are settled."""
        overdue = overdue_refunds(self.db, review_after_seconds)
        REFUNDS_OVERDUE.set(len(overdue))
        for refund in overdue:
            if "reviewRaisedAt" in refund:
                continue
            self.db.refunds.update_one({"_id": refund["_id"]}, {"$set": {"reviewRaisedAt": _now()}})
            log.error(
                "refund_overdue",
                refundReference=refund["_id"],
                status=refund["status"],
                amount=int(refund["amount"]),
                startedAt=refund["createdAt"].isoformat(),
            )

    # ---- the fundings' records -------------------------------------------------------

    def _schedule_recheck(
        self, funding: dict[str, Any], next_at: datetime, lookback: timedelta
    ) -> None:
        """The next recheck, or none once it would fall past the lookback."""
        if next_at > funding["confirmedAt"] + lookback:
            self.fundings.stop_rechecking(funding["_id"])
            return
        # Only while still credited: a reversal during this check removed the field.
        self.fundings.schedule_recheck(funding["_id"], next_at, fundings.CREDITED_STATUSES)

    # ---- one funding -----------------------------------------------------------------

    def _check(self, funding: dict[str, Any], tally: Tally) -> None:
        tally.checked += 1
        try:
            outcome = self.confirmer.confirm(payment_reference=funding["_id"])
        except MonnifyNotFound:
            self._close_unknown_at_monnify(funding, tally)
            return
        except DomainError as exc:  # Monnify down, the wallet busy: the next pass retries
            tally.errors += 1
            log.warning(
                "reconciliation_check_failed", paymentReference=funding["_id"], error=str(exc)
            )
            return
        self._count(outcome, tally)
        if outcome.settled and outcome.status not in fundings.OPEN_STATUSES:
            inbox.settle_waiting_events(
                self.db, funding["_id"], f"settled by reconciliation: funding {outcome.status}"
            )

    @staticmethod
    def _count(outcome: Outcome, tally: Tally) -> None:
        if not outcome.settled:
            tally.still_open += 1
        elif outcome.credited_minor > 0:
            tally.credited += 1
        elif outcome.credited_minor < 0:
            tally.reversed += 1
        elif outcome.status in _CLOSED:
            tally.closed += 1

    def _close_unknown_at_monnify(self, funding: dict[str, Any], tally: Tally) -> None:
        """A funding whose set-up never reached Monnify: nobody can pay it."""
        closed = self.fundings.apply(
            Change(
                funding["_id"],
                {"status": fundings.FAILED},
                "closed: unknown to Monnify",
                from_statuses=(fundings.INITIALIZING, fundings.INIT_FAILED),
            )
        )
        if closed:
            tally.closed += 1
        else:
            tally.errors += 1
            log.error(
                "funding_discrepancy", paymentReference=funding["_id"], reason="unknown to Monnify"
            )


def _within_lookback(funding: dict[str, Any], oldest: datetime) -> bool:
    return funding["status"] in fundings.CREDITED_STATUSES and funding["confirmedAt"] >= oldest


def _last_checked(funding: dict[str, Any]) -> datetime:
    return funding.get("reconciledAt") or _NEVER


def _log_pass(tally: Tally) -> None:
    if tally.checked:
        log.info("reconciliation_pass", **tally.as_dict())


def _now() -> datetime:
    return datetime.now(UTC)
