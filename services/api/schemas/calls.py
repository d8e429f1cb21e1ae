"""Request and response shapes of the calls API and the per-minute rate."""

from __future__ import annotations

from marshmallow import Schema, fields

from services.api.schemas.fields import Money, ObjectIdField, one_of
from services.api.schemas.paging import PageQuerySchema
from shared.calls.model import END_REASONS, STATUSES

ROLES = ("caller", "receiver")


class InitiateCallSchema(Schema):
    receiverId = ObjectIdField(required=True)
    costPerMinute = Money(
        metadata={"description": "The most you accept to pay per minute; the server sets it"}
    )


class CallStartedSchema(Schema):
    callId = ObjectIdField(required=True)
    status = one_of(STATUSES, required=True)
    message = fields.String(required=True)
    ratePerMinute = Money(required=True)
    maxDurationSeconds = fields.Integer(
        required=True,
        metadata={"description": "How long the balance pays for now, within the call limit"},
    )


class CallEndedSchema(Schema):
    callId = ObjectIdField(required=True)
    status = one_of(STATUSES, required=True)
    duration = fields.Integer(required=True, metadata={"description": "Billed minutes started"})
    durationSeconds = fields.Integer(required=True)
    cost = Money(required=True, minimum_minor=0)
    endReason = one_of(END_REASONS, required=True)


class CallSchema(Schema):
    """Every field is always present; those of the end are null while the call is open."""

    callId = ObjectIdField(required=True)
    callerId = ObjectIdField(required=True)
    receiverId = ObjectIdField(required=True)
    role = one_of(ROLES, required=True)
    status = one_of(STATUSES, required=True)
    duration = fields.Integer(required=True, allow_none=True)
    durationSeconds = fields.Integer(required=True, allow_none=True)
    cost = Money(required=True, allow_none=True, minimum_minor=0)
    startedAt = fields.DateTime(required=True)
    endedAt = fields.DateTime(required=True, allow_none=True)
    endReason = one_of(END_REASONS, required=True, allow_none=True)


class CallHistoryQuerySchema(PageQuerySchema):
    role = one_of(ROLES)


class RateSchema(Schema):
    ratePerMinute = Money(required=True, metadata={"description": "Per minute"})


class RateViewSchema(RateSchema):
    currency = fields.String(required=True)
    isDefault = fields.Boolean(required=True)
