"""Request and response shapes of the calls API and the per-minute rate."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from shared.schemas.fields import Money, ObjectIdField
from shared.schemas.paging import PageQuerySchema

ROLES = ("caller", "receiver")


class InitiateCallSchema(Schema):
    receiverId = ObjectIdField(required=True)
    costPerMinute = Money(
        metadata={"description": "The most you accept to pay per minute; the server sets it"}
    )


class CallStartedSchema(Schema):
    callId = fields.String(required=True)
    status = fields.String(required=True)
    message = fields.String(required=True)
    ratePerMinute = Money(required=True)
    maxDurationSeconds = fields.Integer(
        required=True,
        metadata={"description": "How long the balance pays for now, within the call limit"},
    )


class CallEndedSchema(Schema):
    callId = fields.String(required=True)
    status = fields.String(required=True)
    duration = fields.Integer(required=True, metadata={"description": "Billed minutes started"})
    durationSeconds = fields.Integer(required=True)
    cost = Money(required=True)
    endReason = fields.String(required=True)


class CallSchema(Schema):
    callId = fields.String(required=True)
    callerId = fields.String(required=True)
    receiverId = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    status = fields.String(required=True)
    duration = fields.Integer(allow_none=True)
    durationSeconds = fields.Integer(allow_none=True)
    cost = Money(allow_none=True)
    startedAt = fields.DateTime(required=True)
    endedAt = fields.DateTime(allow_none=True)
    endReason = fields.String(allow_none=True)


class CallHistoryQuerySchema(PageQuerySchema):
    role = fields.String(validate=validate.OneOf(ROLES))


class RateSchema(Schema):
    ratePerMinute = Money(required=True, metadata={"description": "Major units per minute"})


class RateViewSchema(RateSchema):
    currency = fields.String(required=True)
    isDefault = fields.Boolean(required=True)
