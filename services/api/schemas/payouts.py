"""Banks, payout accounts and withdrawals on the wire."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.api.schemas.fields import Money
from services.api.schemas.paging import PageQuerySchema
from shared.money import CURRENCY_EXPONENTS


class BankSchema(Schema):
    name = fields.String(required=True)
    code = fields.String(required=True)


class PayoutAccountRequestSchema(Schema):
    bankCode = fields.String(
        required=True, validate=validate.Regexp(r"^[0-9]{3,6}$"), metadata={"example": "058"}
    )
    accountNumber = fields.String(
        required=True,
        validate=validate.Regexp(r"^[0-9]{10}$", error="must be a 10-digit account number"),
        metadata={"example": "0123456781"},
    )


class PayoutAccountSchema(Schema):
    bankCode = fields.String(required=True)
    bankName = fields.String(required=True)
    accountNumber = fields.String(required=True)
    accountName = fields.String(required=True, metadata={"description": "As the bank knows it"})


class WithdrawalRequestSchema(Schema):
    amount = Money(required=True, metadata={"description": "Major units, e.g. 5000 or 49.99"})
    currency = fields.String(validate=validate.OneOf(tuple(CURRENCY_EXPONENTS)))


class WithdrawalHeaderSchema(Schema):
    class Meta:
        unknown = "exclude"  # every other header is none of our business

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9._:-]{1,255}$"),
        metadata={"description": "Required; retrying with the same key returns the first answer"},
    )


class WithdrawalSchema(Schema):
    reference = fields.String(required=True)
    status = fields.String(
        required=True,
        metadata={
            "description": "pending, processing, awaiting_authorization, successful, failed "
            "or reversed"
        },
    )
    amount = Money(required=True)
    fee = Money(required=True, metadata={"description": "WITHDRAWAL_FEE, held with the amount"})
    currency = fields.String(required=True)
    destination = fields.Nested(PayoutAccountSchema, required=True)
    note = fields.String(allow_none=True)
    createdAt = fields.DateTime(required=True)
    updatedAt = fields.DateTime()


class WithdrawalsQuerySchema(PageQuerySchema):
    pass


class AuthorizeSchema(Schema):
    otp = fields.String(required=True, validate=validate.Regexp(r"^[0-9]{4,8}$"))
