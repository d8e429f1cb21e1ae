"""Calls: initiate (the first hold is placed here, synchronously), end, history, one call.

Renewals, the cut-off and settlement run in the worker; this module only enqueues them."""

from __future__ import annotations

from http import HTTPStatus

from bson import ObjectId
from flask_jwt_extended import current_user
from marshmallow import ValidationError

from services.api import context
from services.api.blueprint import LINK_HEADER, Blueprint, object_id_parameter
from services.api.links import next_link
from services.api.queue import enqueue_or_leave
from services.api.schemas.calls import (
    CallEndedSchema,
    CallHistoryQuerySchema,
    CallSchema,
    CallStartedSchema,
    InitiateCallSchema,
)
from services.api.schemas.fields import ObjectIdField
from shared.calls import CallContext, Followup, sessions
from shared.errors import ErrorCode, InvalidRequest

blp = Blueprint("calls", __name__, url_prefix="/calls", description="Pay-per-minute calls")


def _calls() -> CallContext:
    return CallContext.from_settings(context.settings())


def _call_id(raw: str) -> ObjectId:
    try:
        return ObjectIdField().deserialize(raw)
    except ValidationError as exc:
        raise InvalidRequest(
            "Malformed call id", {"callId": exc.messages}, code=ErrorCode.VALIDATION_ERROR
        ) from None


def _schedule(ctx: CallContext, followups: list[Followup]) -> None:
    """Enqueue what the worker does next. A broker failure must not undo a call that
    is already started or ended: the sweeper picks such calls up."""
    now = ctx.clock()
    for step in followups:
        countdown = max((step.eta - now).total_seconds(), 0)
        enqueue_or_leave(step.task, countdown=countdown, **step.kwargs)


@blp.route("/initiate", methods=["POST"])
@blp.token_required()
@blp.arguments(InitiateCallSchema)
@blp.response(201, CallStartedSchema)
@blp.errors(
    HTTPStatus.BAD_REQUEST, HTTPStatus.PAYMENT_REQUIRED, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT
)
def initiate(body: dict):
    """Start a call at the receiver's rate; funds for its first block are reserved now."""
    ctx = _calls()
    started = sessions.initiate(
        ctx, current_user["_id"], body["receiverId"], body.get("costPerMinute")
    )
    _schedule(ctx, started.followups)
    return started.view()


@blp.route("/<call_id>/end", methods=["POST"], parameters=[object_id_parameter("call_id")])
@blp.token_required()
@blp.response(200, CallEndedSchema)
@blp.errors(HTTPStatus.BAD_REQUEST, HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND)
def end(call_id: str):
    """End the call (caller or receiver); every end of one call answers the same."""
    ctx = _calls()
    result, followups = sessions.end(ctx, _call_id(call_id), current_user["_id"])
    _schedule(ctx, followups)
    return result


@blp.route("/history", methods=["GET"])
@blp.token_required()
@blp.arguments(CallHistoryQuerySchema, location="query")
@blp.response(200, CallSchema(many=True), headers=LINK_HEADER)
@blp.errors(HTTPStatus.BAD_REQUEST)
def history(query: dict):
    """Your calls, newest first, as caller, receiver or both; next page in the Link header."""
    limit = query["limit"]
    page, cursor = sessions.history(
        _calls(), current_user["_id"], query.get("role"), limit, query.get("cursor")
    )
    return page, 200, next_link(cursor)


@blp.route("/<call_id>", methods=["GET"], parameters=[object_id_parameter("call_id")])
@blp.token_required()
@blp.response(200, CallSchema)
@blp.errors(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND)
def get_call(call_id: str):
    """One of your calls; any other id is not found."""
    return sessions.get_call(_calls(), _call_id(call_id), current_user["_id"])
