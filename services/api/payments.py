"""Monnify's webhook intake: authenticate, store, enqueue, answer 200 in milliseconds.

No wallet work happens here: a worker confirms the payment with Monnify's status API.
An authentic event is stored before we answer, so a queue outage loses nothing (a beat
job enqueues what was stored but not processed).
"""

from __future__ import annotations

from http import HTTPStatus

from flask import request

from services.api.blueprint import Blueprint
from services.api.queue import enqueue_or_leave
from services.api.runtime import runtime
from services.api.schemas.payments import WebhookAckSchema
from shared.errors import ErrorCode, Forbidden, Unauthorized
from shared.funding.inbox import parse_body, store_event
from shared.funding.jobs import PROCESS_EVENT_TASK
from shared.logs import get_logger
from shared.metrics import WEBHOOKS_REJECTED
from shared.monnify.signature import verify_request, verify_transaction_hash

log = get_logger(__name__)

blp = Blueprint("payments", __name__, url_prefix="/payments", description="Monnify webhooks")


@blp.route("/monnify/webhook", methods=["POST"])
@blp.response(200, WebhookAckSchema)
@blp.errors(HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN)
def monnify_webhook():
    """Receive a Monnify notification, signed with `monnify-signature` (HMAC-SHA512 of the
    raw body with the secret key). Unsigned or wrongly signed posts are 401."""
    _check_source()
    raw = request.get_data(cache=True)
    verified_by = _authenticate(raw)
    stored = store_event(runtime.db(), raw, verified_by=verified_by, source_ip=request.remote_addr)
    if stored.processable:
        enqueue_or_leave(PROCESS_EVENT_TASK, event_id=str(stored.event_id))
    log.info("webhook_stored", event_id=str(stored.event_id), duplicate=stored.duplicate)
    return {"message": "Webhook received"}


def _check_source() -> None:
    allowed = runtime.settings().monnify_allowed_ips
    if allowed and request.remote_addr not in allowed:
        log.warning("webhook_source_refused", source_ip=request.remote_addr)
        WEBHOOKS_REJECTED.labels("source_ip").inc()
        raise Forbidden("This source may not post Monnify notifications")


def _authenticate(raw: bytes) -> str:
    secret = runtime.settings().monnify_secret_key
    if verify_request(raw, request.headers, secret):
        return "signature"
    if runtime.settings().monnify_accept_legacy_hash and _legacy_hash_valid(raw, secret):
        return "transactionHash"
    log.warning("webhook_signature_rejected", source_ip=request.remote_addr)
    WEBHOOKS_REJECTED.labels("signature").inc()
    raise Unauthorized("Missing or invalid monnify-signature", code=ErrorCode.INVALID_SIGNATURE)


def _legacy_hash_valid(raw: bytes, secret: str) -> bool:
    """The original API's flat notification, with the legacy `transactionHash`: a plain
    SHA-512 of the secret and four fields, not an HMAC of the body, so the rest of the
    body is not covered. Off unless MONNIFY_ACCEPT_LEGACY_HASH turns it on."""
    body = parse_body(raw)
    if body is None or "eventType" in body:
        return False
    fields = ("paymentReference", "amountPaid", "paidOn", "transactionReference")
    if any(body.get(name) is None for name in fields):
        return False
    return verify_transaction_hash(
        body.get("transactionHash"),
        secret_key=secret,
        payment_reference=str(body["paymentReference"]),
        amount_paid=str(body["amountPaid"]),
        paid_on=str(body["paidOn"]),
        transaction_reference=str(body["transactionReference"]),
    )
