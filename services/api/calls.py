"""Calls: initiate (the first hold is placed here, synchronously), end, history, one call.

Renewals, the cut-off and settlement run in the worker; this module only enqueues them.
A broker failure must not undo a call already started or ended: the follow-up is left
to the sweeper (`send_task_or_leave`)."""

from __future__ import annotations

from http import HTTPStatus

from bson import ObjectId
from flask_jwt_extended import current_user
from marshmallow import ValidationError

from services.api.blueprint import LINK_HEADER, Blueprint, object_id_parameter
from services.api.links import next_link
from services.api.queue import send_task_or_leave
from services.api.runtime import runtime
from services.api.schemas.calls import (
    CallEndedSchema,
    CallHistoryQuerySchema,
    CallSchema,
    CallStartedSchema,
    InitiateCallSchema,
)
from services.api.schemas.fields import ObjectIdField
from shared.calls import service
from shared.calls.followups import schedule
from shared.errors import ErrorCode, InvalidRequest

blp = Blueprint("calls", __name__, url_prefix="/calls", description="Pay-per-minute calls")


def _call_id(raw: str) -> ObjectId:
    try:
        return ObjectIdField().deserialize(raw)
    except ValidationError as exc:
        raise InvalidRequest(
            "Malformed call id", {"callId": exc.messages}, code=ErrorCode.VALIDATION_ERROR
        ) from None


@blp.route("/initiate", methods=["POST"])
@blp.token_required()
@blp.arguments(InitiateCallSchema)
@blp.response(201, CallStartedSchema)
@blp.errors(
    HTTPStatus.BAD_REQUEST, HTTPStatus.PAYMENT_REQUIRED, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT
)
def initiate(body: dict):
    """Start a call at the receiver's rate; funds for its first block are reserved now."""
    ctx = runtime.calls()
    started = service.initiate(
        ctx, current_user["_id"], body["receiverId"], body.get("costPerMinute")
    )
    schedule(send_task_or_leave, started.followups)
    return started.view()


@blp.route("/<call_id>/end", methods=["POST"], parameters=[object_id_parameter("call_id")])
@blp.token_required()
@blp.response(200, CallEndedSchema)
@blp.errors(HTTPStatus.BAD_REQUEST, HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND)
def end(call_id: str):
    """End the call (caller or receiver); every end of one call answers the same."""
    ctx = runtime.calls()
    result, followups = service.end(ctx, _call_id(call_id), current_user["_id"])
    schedule(send_task_or_leave, followups)
    return result


@blp.route("/history", methods=["GET"])
@blp.token_required()
@blp.arguments(CallHistoryQuerySchema, location="query")
@blp.response(200, CallSchema(many=True), headers=LINK_HEADER)
@blp.errors(HTTPStatus.BAD_REQUEST)
def history(query: dict):
    """Your calls, newest first, as caller, receiver or both; next page in the Link header."""
    limit = query["limit"]
    page, cursor = service.history(
        runtime.calls(), current_user["_id"], query.get("role"), limit, query.get("cursor")
    )
    return page, 200, next_link(cursor)


@blp.route("/<call_id>", methods=["GET"], parameters=[object_id_parameter("call_id")])
@blp.token_required()
@blp.response(200, CallSchema)
@blp.errors(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND)
def get_call(call_id: str):
    """One of your calls; any other id is not found."""
    return service.get_call(runtime.calls(), _call_id(call_id), current_user["_id"])
