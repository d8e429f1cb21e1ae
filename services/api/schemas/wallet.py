from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.api.schemas.fields import Money, one_of
from services.api.schemas.paging import PageQuerySchema
from shared.money import CURRENCY_EXPONENTS

TRANSACTION_TYPES = ("credit", "debit")
TRANSACTION_STATUSES = ("success",)  # every movement the ledger records has succeeded


def _currency_field(**kwargs) -> fields.String:
    return fields.String(
        validate=validate.OneOf(tuple(CURRENCY_EXPONENTS)),
        metadata={"description": "ISO 4217 code; NGN when omitted"},
        **kwargs,
    )


class CurrencyQuerySchema(Schema):
    currency = _currency_field()


class BalanceSchema(Schema):
    balance = Money(required=True, minimum_minor=0, metadata={"description": "Posted balance"})
    available = Money(required=True, minimum_minor=0, metadata={"description": "balance - held"})
    held = Money(required=True, minimum_minor=0, metadata={"description": "Reserved by open holds"})
    currency = fields.String(required=True)
    restricted = fields.Boolean(
        required=True, metadata={"description": "Restricted wallets cannot pay for calls"}
    )


class TransactionsQuerySchema(PageQuerySchema):
    type = one_of(TRANSACTION_TYPES)
    status = one_of(TRANSACTION_STATUSES)
    currency = _currency_field()


class TransactionSchema(Schema):
    id = fields.String(required=True)
    type = one_of(TRANSACTION_TYPES, required=True)
    amount = Money(required=True)
    currency = fields.String(required=True)
    reference = fields.String(required=True)
    status = one_of(TRANSACTION_STATUSES, required=True)
    description = fields.String(required=True)
    balanceAfter = Money(required=True, minimum_minor=0)
    createdAt = fields.DateTime(required=True)
