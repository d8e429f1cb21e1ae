from __future__ import annotations

from marshmallow import Schema, fields, validate

from shared.money import CURRENCY_EXPONENTS
from shared.schemas.fields import Money
from shared.schemas.paging import PageQuerySchema


def _currency_field(**kwargs) -> fields.String:
    return fields.String(
        validate=validate.OneOf(tuple(CURRENCY_EXPONENTS)),
        metadata={"description": "ISO 4217 code; NGN when omitted"},
        **kwargs,
    )


class CurrencyQuerySchema(Schema):
    currency = _currency_field()


class BalanceSchema(Schema):
    balance = Money(required=True, metadata={"description": "Posted balance, major units"})
    available = Money(required=True, metadata={"description": "balance - held"})
    held = Money(required=True, metadata={"description": "Reserved by open holds"})
    currency = fields.String(required=True)
    restricted = fields.Boolean()


class TransactionsQuerySchema(PageQuerySchema):
    type = fields.String(validate=validate.OneOf(("credit", "debit")))
    status = fields.String(validate=validate.OneOf(("success",)))
    currency = _currency_field()


class TransactionSchema(Schema):
    id = fields.String(required=True)
    type = fields.String(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True)
    reference = fields.String(required=True)
    status = fields.String(required=True)
    description = fields.String()
    balanceAfter = Money(required=True)
    createdAt = fields.DateTime(required=True)
