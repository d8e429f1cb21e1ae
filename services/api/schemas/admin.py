"""Admin API shapes: the webhook review queue, wallet restrictions, refunds and the
reconciliation report."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.api.schemas.fields import Money, ObjectIdField, one_of
from services.api.schemas.paging import page_limit
from shared.funding import inbox, refunds
from shared.funding.daily_report import DISCREPANCY_KINDS
from shared.money import CURRENCY_EXPONENTS


def _reason(required: bool = True, maximum: int = 500) -> fields.String:
    return fields.String(
        required=required,
        validate=validate.Length(min=1, max=maximum),
        metadata={"description": "Why: kept with the admin action"},
    )


class ListLimitSchema(Schema):
    limit = page_limit(default=50, maximum=200)


class WebhookQuerySchema(ListLimitSchema):
    status = one_of(
        inbox.REVIEW_STATUSES,
        metadata={"description": "One review status; all of them when omitted"},
    )


class WebhookEventSchema(Schema):
    id = ObjectIdField(required=True)
    eventType = fields.String(allow_none=True)
    status = one_of(inbox.STATUSES, required=True)
    note = fields.String(allow_none=True)
    paymentReference = fields.String(allow_none=True)
    transactionReference = fields.String(allow_none=True)
    refundReference = fields.String(allow_none=True)
    deliveries = fields.Integer()
    verifiedBy = fields.String()
    receivedAt = fields.DateTime(required=True)
    updatedAt = fields.DateTime()
    body = fields.String(metadata={"description": "The notification as received"})


class ReasonSchema(Schema):
    reason = _reason()


class RequeuedSchema(Schema):
    id = ObjectIdField(required=True)
    status = one_of(inbox.STATUSES, required=True)
    enqueued = fields.Boolean(
        required=True,
        metadata={"description": "False: the queue was down; the requeue job sends it"},
    )


class UnrestrictSchema(ReasonSchema):
    currency = fields.String(validate=validate.OneOf(tuple(CURRENCY_EXPONENTS)))


class WalletStateSchema(Schema):
    account = fields.String(required=True)
    currency = fields.String(required=True)
    balance = Money(required=True, minimum_minor=0)
    available = Money(required=True, minimum_minor=0)
    owed = Money(required=True, minimum_minor=0, metadata={"description": "Left owed by reversals"})
    restricted = fields.Boolean(required=True)
    restrictedReason = fields.String(required=True, allow_none=True)


class RefundRequestSchema(Schema):
    amount = Money(metadata={"description": "Everything still refundable if omitted"})
    reason = _reason(maximum=64)  # Monnify's limit on refundReason
    customerNote = fields.String(validate=validate.Length(min=1, max=16))


class RefundSchema(Schema):
    refundReference = fields.String(required=True)
    paymentReference = fields.String(required=True)
    transactionReference = fields.String(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True)
    status = one_of(refunds.STATUSES, required=True)
    reason = fields.String(required=True)
    note = fields.String(allow_none=True)
    createdAt = fields.DateTime(required=True)
    updatedAt = fields.DateTime(required=True)


class ReconciliationQuerySchema(ListLimitSchema):
    day = fields.Date(
        metadata={"description": "YYYY-MM-DD (UTC); the latest report's day when omitted"}
    )
    kind = one_of(DISCREPANCY_KINDS)
    cursor = fields.String(
        validate=validate.Length(max=200),
        metadata={"description": "From the previous page's Link header"},
    )


class SignedMoney(Money):
    """An amount that may be zero or negative (a net movement), in major units."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        del self.metadata["minimum"]


class DiscrepancySchema(Schema):
    id = fields.String(required=True)
    day = fields.String(required=True)
    kind = one_of(DISCREPANCY_KINDS, required=True)
    subject = fields.String(required=True)
    message = fields.String(required=True)
    expected = SignedMoney(allow_none=True)
    actual = SignedMoney(allow_none=True)
    foundAt = fields.DateTime(required=True)


class CurrencyTotalsSchema(Schema):
    monnify = SignedMoney(required=True, metadata={"description": "What Monnify reports, net"})
    ledger = SignedMoney(required=True, metadata={"description": "What the ledger moved, net"})


class ReportSchema(Schema):
    day = fields.String(required=True)
    clearingMovements = fields.Dict(keys=fields.String(), values=SignedMoney())
    totals = fields.Dict(keys=fields.String(), values=fields.Nested(CurrencyTotalsSchema))
    fundingsChecked = fields.Integer(required=True)
    fundingsUnchecked = fields.Integer(required=True)
    discrepancies = fields.Integer(required=True)
    createdAt = fields.DateTime(required=True)


class ReconciliationSchema(Schema):
    latestReport = fields.Nested(ReportSchema, allow_none=True)
    discrepancies = fields.List(fields.Nested(DiscrepancySchema), required=True)
