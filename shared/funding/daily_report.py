"""The daily report: a day's movements of the gateway clearing account compared with
Monnify's view of that day's fundings, the ledger's invariants run, and every
discrepancy stored for `GET /admin/reconciliation`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bson import Int64
from pymongo.database import Database

from shared.funding.fundings import transaction_at_monnify
from shared.funding.refunds import overdue_refunds
from shared.funding.repository import FundingRepository
from shared.ledger import LedgerReads, SystemAccount, check_recent, system_account_id
from shared.logs import get_logger
from shared.metrics import RECONCILIATION_DISCREPANCIES
from shared.money import CURRENCY_EXPONENTS
from shared.monnify.client import MonnifyClient
from shared.monnify.errors import MonnifyError, MonnifyNotFound
from shared.monnify.models import PaymentStatus, RefundStatus

log = get_logger(__name__)

_PAID = (PaymentStatus.PAID, PaymentStatus.OVERPAID, PaymentStatus.PARTIALLY_PAID)


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


def reconcile_day(
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
    # Created that day, moved through clearing that day, or flagged that day.
    moved = {reference for reference, _ in movements}
    fundings = FundingRepository(db).of_the_day(start, end, moved)
    discrepancies: list[Discrepancy] = []
    totals: dict[str, dict[str, int]] = {}
    unchecked = 0
    for funding in fundings:
        expected = _monnify_expected(db, monnify, funding)
        if expected is None:
            unchecked += 1
            continue
        ours = ledger_net(db, funding)
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


def _monnify_expected(db: Database, monnify: MonnifyClient, funding: dict[str, Any]) -> int | None:
    """What Monnify says the wallet should have got net: the amount paid (nothing once
    reversed) less refunds it completed. None if Monnify could not be asked."""
    try:
        transaction = transaction_at_monnify(monnify, funding)
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


def ledger_net(db: Database, funding: dict[str, Any]) -> int:
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
        "createdAt": datetime.now(UTC),
    }


def _store(db: Database, day: date, report: dict[str, Any], found: list[Discrepancy]) -> None:
    key = day.isoformat()
    db.reconciliation_reports.replace_one({"_id": key}, report, upsert=True)
    db.reconciliation_discrepancies.delete_many({"day": key})
    now = datetime.now(UTC)
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
