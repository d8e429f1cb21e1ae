"""Reconciliation with Monnify: what webhooks missed, and a daily report.

- Open fundings older than a configured age are confirmed with the status API, so a
  missed webhook costs nothing and expired ones are closed.
- Recently credited fundings are confirmed again now and then: Monnify sends no event
  when it reverses a payment, so this is how a reversal is found.
- Transfers into reserved accounts whose webhook never came are found in each account's
  transaction list (`scan_reserved_accounts`) and confirmed like any funding.
- Open refunds are looked up with the refund status API, in case their webhook never came;
  one still open past REFUND_REVIEW_AFTER_SECONDS is raised for review.
- The daily report compares a day's movements of the gateway clearing account with
  Monnify's view of that day's fundings, runs the ledger's invariants, and stores every
  discrepancy for `GET /admin/reconciliation`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bson import Int64
from pymongo import ASCENDING
from pymongo.database import Database

from shared.errors import DomainError
from shared.funding import fundings as f
from shared.funding import inbox, reserved_accounts
from shared.funding.confirmation import FundingConfirmer, Outcome
from shared.funding.refunds import Refunds, overdue_refunds
from shared.ledger import LedgerReads, SystemAccount, check_recent, system_account_id
from shared.logs import get_logger
from shared.metrics import RECONCILIATION_DISCREPANCIES, REFUNDS_OVERDUE
from shared.money import CURRENCY_EXPONENTS
from shared.monnify.client import MonnifyClient
from shared.monnify.errors import MonnifyError, MonnifyNotFound
from shared.monnify.models import PaymentStatus, RefundStatus
from shared.queries import in_chunks

log = get_logger(__name__)

BATCH = 200
_OPEN_FIELDS = {"_id": 1, "status": 1, "reconciledAt": 1}
_RECHECK_FIELDS = {"_id": 1, "status": 1, "confirmedAt": 1}
_NEVER = datetime.min.replace(tzinfo=UTC)
_PAID = (PaymentStatus.PAID, PaymentStatus.OVERPAID, PaymentStatus.PARTIALLY_PAID)
_CLOSED = (f.EXPIRED, f.FAILED)


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

    def settle_open_fundings(self, older_than_seconds: int) -> Tally:
        """Confirm fundings still open after `older_than_seconds`, least recently checked
        first."""
        cutoff = _now() - timedelta(seconds=older_than_seconds)
        candidates = [
            funding for status in f.OPEN_STATUSES for funding in self._open_since(status, cutoff)
        ]
        # Ordered here: a sort on reconciledAt, outside (status, createdAt), would walk
        # the collection on the embedded server.
        candidates.sort(key=_last_checked)
        tally = Tally()
        for funding in candidates[:BATCH]:
            self._check(funding, tally)
            self._mark_checked(funding["_id"])
        _log_pass(tally)
        return tally

    def recheck_credited_fundings(self, *, lookback_seconds: int, every_seconds: int) -> Tally:
        """Confirm again credited fundings whose recheck is due (oldest due first): a
        REVERSED status then takes the money back. A credit is due at once, then every
        `every_seconds` while it was confirmed within `lookback_seconds`."""
        now = _now()
        lookback = timedelta(seconds=lookback_seconds)
        # Served by the sparse recheckAt index, which holds only what may come due, so a
        # run reads what is due and nothing else.
        due = (
            self.db.fundings.find({"recheckAt": {"$lte": now}}, _RECHECK_FIELDS)
            .sort("recheckAt", ASCENDING)
            .limit(BATCH)
        )
        tally = Tally()
        for funding in list(due):
            if not _within_lookback(funding, now - lookback):
                self._stop_rechecking(funding["_id"])
                continue
            self._check(funding, tally)
            self._mark_checked(funding["_id"])
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
                self._mark_checked(payment_reference)
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
            tally.still_open += status in ("initiating", "pending")
            tally.closed += status not in ("initiating", "pending")
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

    def _open_since(self, status: str, cutoff: datetime) -> list[dict[str, Any]]:
        """Fundings in one open status created by `cutoff`, oldest first: equality on
        status and a range on createdAt, both in fundings_by_status."""
        cursor = (
            self.db.fundings.find({"status": status, "createdAt": {"$lte": cutoff}}, _OPEN_FIELDS)
            .sort("createdAt", ASCENDING)
            .limit(BATCH)
        )
        return list(cursor)

    def _mark_checked(self, payment_reference: str) -> None:
        self.db.fundings.update_one({"_id": payment_reference}, {"$set": {"reconciledAt": _now()}})

    def _schedule_recheck(
        self, funding: dict[str, Any], next_at: datetime, lookback: timedelta
    ) -> None:
        """The next recheck, or none once it would fall past the lookback."""
        if next_at > funding["confirmedAt"] + lookback:
            self._stop_rechecking(funding["_id"])
            return
        # Only while still credited: a reversal during this check removed the field.
        self.db.fundings.update_one(
            {"_id": funding["_id"], "status": {"$in": list(f.CREDITED_STATUSES)}},
            {"$set": {"recheckAt": next_at}},
        )

    def _stop_rechecking(self, payment_reference: str) -> None:
        self.db.fundings.update_one({"_id": payment_reference}, {"$unset": {"recheckAt": ""}})

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
        if outcome.settled and outcome.status not in f.OPEN_STATUSES:
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
        now = _now()
        closed = self.db.fundings.update_one(
            {"_id": funding["_id"], "status": {"$in": [f.INITIALIZING, f.INIT_FAILED]}},
            {
                "$set": {"status": f.FAILED, "updatedAt": now},
                "$push": {"decisions": {"at": now, "decision": "closed: unknown to Monnify"}},
            },
        )
        if closed.modified_count:
            tally.closed += 1
        else:
            tally.errors += 1
            log.error(
                "funding_discrepancy", paymentReference=funding["_id"], reason="unknown to Monnify"
            )


# ---- the daily report --------------------------------------------------------------------


@dataclass(frozen=True)
class Discrepancy:
    kind: str  # one of DISCREPANCY_KINDS
    subject: str
    message: str
    expected: int | None = None
    actual: int | None = None


DISCREPANCY_KINDS = (
    "amount_mismatch",  # the ledger moved another amount for a funding than Monnify reports
    "funding_flagged",  # confirmation flagged the funding (say, Monnify changed its amount)
    "clearing_without_funding",  # clearing moved money under a reference no funding has
    "ledger_invariant",  # shared.ledger.check_recent found a violation
    "refund_overdue",  # a refund still open at Monnify past REFUND_REVIEW_AFTER_SECONDS
)


def daily_report(
    db: Database,
    monnify: MonnifyClient,
    day: date,
    *,
    settle_seconds: int,
    refund_review_after_seconds: int,
) -> dict[str, Any]:
    """Reconcile one UTC day; the report and its discrepancies replace any earlier run's.
    `settle_seconds` is the invariant check's (INVARIANTS_SETTLE_SECONDS); refunds open
    longer than `refund_review_after_seconds` are listed as they are when it runs."""
    start = datetime.combine(day, time.min, UTC)
    end = start + timedelta(days=1)
    movements = _clearing_movements(db, start, end)
    fundings = _fundings_of_the_day(db, start, end, {reference for reference, _ in movements})
    discrepancies: list[Discrepancy] = []
    totals: dict[str, dict[str, int]] = {}
    unchecked = 0
    for funding in fundings:
        expected = _monnify_expected(db, monnify, funding)
        if expected is None:
            unchecked += 1
            continue
        ours = _ledger_net(db, funding)
        currency = totals.setdefault(funding["currency"], {"monnify": 0, "ledger": 0})
        currency["monnify"] += expected
        currency["ledger"] += ours
        discrepancies.extend(_funding_discrepancies(funding, expected, ours))
    discrepancies.extend(_movements_without_funding(movements, fundings))
    discrepancies.extend(
        Discrepancy("ledger_invariant", f"{v.rule}:{v.subject}", v.rule, v.expected, v.actual)
        # The incremental check, from where the last one stopped, so this job's cost
        # follows the day's traffic rather than the ledger's size. The full check is
        # `python -m services.manage check-invariants --full`.
        for v in check_recent(db, settle_seconds=settle_seconds).violations
    )
    discrepancies.extend(_overdue_refunds(db, refund_review_after_seconds))
    discrepancies = list({(d.kind, d.subject): d for d in discrepancies}.values())
    report = _report_document(day, movements, totals, len(fundings), unchecked, discrepancies)
    _store(db, day, report, discrepancies)
    return report


def report_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The report in plain JSON types (for a task result)."""
    return {key: value for key, value in report.items() if key not in ("createdAt",)}


def _clearing_accounts() -> list[str]:
    return [system_account_id(SystemAccount.GATEWAY_CLEARING, c) for c in CURRENCY_EXPONENTS]


def _clearing_movements(db: Database, start: datetime, end: datetime) -> list[tuple[str, dict]]:
    """The day's clearing postings, netted per reference (a transactionReference)."""
    nets = LedgerReads(db).net_by_reference(_clearing_accounts(), start, end)
    return [(reference, {"net": net, "currency": c}) for reference, (net, c) in nets.items()]


def _fundings_of_the_day(
    db: Database, start: datetime, end: datetime, references: set[str]
) -> list[dict[str, Any]]:
    """Fundings created that day, moved through clearing that day, or flagged that day:
    one index-served query each (an $or would walk the collection on the embedded
    server), merged by _id."""
    in_day = {"$gte": start, "$lt": end}
    found: dict[str, dict[str, Any]] = {}
    for funding in db.fundings.find({"createdAt": in_day}):  # fundings_by_creation
        found.setdefault(funding["_id"], funding)
    # The sparse unique transactionReference index, in $in chunks.
    for chunk in in_chunks(sorted(references)):
        for funding in db.fundings.find({"transactionReference": {"$in": chunk}}):
            found.setdefault(funding["_id"], funding)
    # Flagged ones among those updated that day (fundings_by_update): the embedded server
    # answers a condition on `discrepancy` ($exists, or a range) with a scan.
    for funding in db.fundings.find({"updatedAt": in_day}):
        if "discrepancy" in funding:
            found.setdefault(funding["_id"], funding)
    return list(found.values())


def _monnify_expected(db: Database, monnify: MonnifyClient, funding: dict[str, Any]) -> int | None:
    """What Monnify says the wallet should have got net: the amount paid (nothing once
    reversed) less refunds it completed. None if Monnify could not be asked."""
    try:
        if funding.get("transactionReference"):
            transaction = monnify.get_transaction(funding["transactionReference"])
        else:
            transaction = monnify.get_transaction_by_payment_reference(funding["_id"])
    except MonnifyNotFound:
        return 0  # never created at Monnify: nothing was paid
    except MonnifyError as exc:
        log.warning("reconciliation_unchecked", paymentReference=funding["_id"], error=str(exc))
        return None
    if transaction.payment_status not in _PAID:
        return 0
    try:
        refunded = _monnify_refunded(db, monnify, funding)
    except MonnifyError as exc:
        log.warning("reconciliation_unchecked", paymentReference=funding["_id"], error=str(exc))
        return None
    return transaction.amount_paid_minor - refunded


def _monnify_refunded(db: Database, monnify: MonnifyClient, funding: dict[str, Any]) -> int:
    refunded = 0
    # Rejected ones skipped here: status is outside refunds_by_funding.
    for refund in db.refunds.find({"paymentReference": funding["_id"]}):
        if refund["status"] == "rejected":
            continue
        try:
            answer = monnify.get_refund(refund["_id"], funding["currency"])
        except MonnifyNotFound:
            continue
        if answer.refund_status is RefundStatus.COMPLETED:
            refunded += answer.refund_amount_minor
    return refunded


def _ledger_net(db: Database, funding: dict[str, Any]) -> int:
    """What left the clearing account for this funding, net, as of now: the credit, less
    a reversal, less captured refunds."""
    reference = funding.get("transactionReference")
    if not reference:
        return 0
    return -LedgerReads(db).net_of_reference(reference, _clearing_accounts())


def _funding_discrepancies(funding: dict[str, Any], expected: int, ours: int) -> list[Discrepancy]:
    found = []
    if expected != ours:
        found.append(
            Discrepancy(
                "amount_mismatch",
                funding["_id"],
                "the ledger moved a different amount for this funding than Monnify reports",
                expected,
                ours,
            )
        )
    if funding.get("discrepancy"):
        found.append(Discrepancy("funding_flagged", funding["_id"], funding["discrepancy"]))
    return found


def _movements_without_funding(
    movements: list[tuple[str, dict]], fundings: list[dict[str, Any]]
) -> list[Discrepancy]:
    known = {funding.get("transactionReference") for funding in fundings}
    return [
        Discrepancy(
            "clearing_without_funding",
            str(reference),
            "the clearing account moved money under a reference no funding has",
            0,
            -int(row["net"]),
        )
        for reference, row in movements
        if reference not in known
    ]


def _overdue_refunds(db: Database, review_after_seconds: int) -> list[Discrepancy]:
    return [
        Discrepancy(
            "refund_overdue",
            refund["_id"],
            f"still {refund['status']} at Monnify since {refund['createdAt'].isoformat()}: "
            "its amount stays held until Monnify's verdict",
            actual=int(refund["amount"]),
        )
        for refund in overdue_refunds(db, review_after_seconds)
    ]


def _report_document(
    day: date,
    movements: list[tuple[str, dict]],
    totals: dict[str, dict[str, int]],
    fundings_checked: int,
    unchecked: int,
    discrepancies: list[Discrepancy],
) -> dict[str, Any]:
    clearing: dict[str, int] = {}
    for _, row in movements:
        clearing[row["currency"]] = clearing.get(row["currency"], 0) + int(row["net"])
    return {
        "day": day.isoformat(),
        "clearingMovements": clearing,  # net of the day's postings (credits are negative)
        "totals": totals,  # per currency: what Monnify expects and what the ledger moved
        "fundingsChecked": fundings_checked - unchecked,
        "fundingsUnchecked": unchecked,
        "discrepancies": len(discrepancies),
        "createdAt": _now(),
    }


def _store(db: Database, day: date, report: dict[str, Any], found: list[Discrepancy]) -> None:
    key = day.isoformat()
    db.reconciliation_reports.replace_one({"_id": key}, report, upsert=True)
    db.reconciliation_discrepancies.delete_many({"day": key})
    now = _now()
    documents = [
        {
            "_id": f"{key}:{d.kind}:{d.subject}",
            "day": key,
            **{k: v for k, v in asdict(d).items() if k not in ("expected", "actual")},
            "expected": None if d.expected is None else Int64(d.expected),
            "actual": None if d.actual is None else Int64(d.actual),
            "foundAt": now,
        }
        for d in found
    ]
    if documents:
        db.reconciliation_discrepancies.insert_many(documents)
    for discrepancy in found:
        log.error("reconciliation_discrepancy", day=key, **asdict(discrepancy))
    RECONCILIATION_DISCREPANCIES.labels("reconciliation").inc(len(found))
    log.info(
        "reconciliation_report",
        day=key,
        discrepancies=len(found),
        fundings=report["fundingsChecked"],
    )


def _within_lookback(funding: dict[str, Any], oldest: datetime) -> bool:
    return funding["status"] in f.CREDITED_STATUSES and funding["confirmedAt"] >= oldest


def _last_checked(funding: dict[str, Any]) -> datetime:
    return funding.get("reconciledAt") or _NEVER


def _log_pass(tally: Tally) -> None:
    if tally.checked:
        log.info("reconciliation_pass", **tally.as_dict())


def _now() -> datetime:
    return datetime.now(UTC)
