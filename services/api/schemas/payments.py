from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.api.schemas.fields import Money
from shared.money import CURRENCY_EXPONENTS


class FundRequestSchema(Schema):
    amount = Money(required=True, metadata={"description": "e.g. 5000 or 49.99"})
    email = fields.Email(validate=validate.Length(max=254))
    currency = fields.String(validate=validate.OneOf(tuple(CURRENCY_EXPONENTS)))


class FundResponseSchema(Schema):
    transactionReference = fields.String(required=True)
    paymentReference = fields.String(required=True)
    accountNumber = fields.String(required=True)
    bankName = fields.String(required=True)
    accountName = fields.String(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True)
    expiryDate = fields.DateTime(required=True)
    checkoutUrl = fields.String(required=True)


class IdempotencyHeaderSchema(Schema):
    class Meta:
        unknown = "exclude"  # every other header is none of our business

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Regexp(r"^[A-Za-z0-9._:-]{1,255}$"),
        metadata={"description": "Retrying with the same key returns the first response"},
    )


class WebhookAckSchema(Schema):
    message = fields.String(required=True)
