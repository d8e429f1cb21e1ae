"""KYC and the reserved funding account."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.kyc import KYC_DIGITS

# \Z, not $: `$` would let a trailing newline through.
_DIGITS = validate.Regexp(
    rf"^[0-9]{{{KYC_DIGITS}}}\Z", error=f"Must be exactly {KYC_DIGITS} digits"
)


class KycSchema(Schema):
    bvn = fields.String(validate=_DIGITS, metadata={"description": "Bank Verification Number"})
    nin = fields.String(validate=_DIGITS, metadata={"description": "National Identity Number"})

    @validates_schema
    def _exactly_one(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if ("bvn" in data) == ("nin" in data):
            raise ValidationError("Give exactly one of bvn or nin", field_name="_schema")


class KycViewSchema(Schema):
    type = fields.String(required=True, metadata={"description": "bvn or nin"})
    last4 = fields.String(required=True, metadata={"description": "The number's last 4 digits"})
    updatedAt = fields.DateTime(required=True)


class ReservedBankAccountSchema(Schema):
    bankCode = fields.String(required=True)
    bankName = fields.String(required=True)
    accountNumber = fields.String(required=True)
    accountName = fields.String(required=True)


class FundingAccountSchema(Schema):
    accountReference = fields.String(required=True)
    accountName = fields.String(required=True)
    currency = fields.String(required=True)
    accounts = fields.List(fields.Nested(ReservedBankAccountSchema), required=True)
