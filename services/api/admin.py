"""Admin operations: the webhook review queue, wallet restrictions lifted by hand,
refunds, and the reconciliation report. Every route needs the `admin` role, read from
the user's record on each request (granted only by `python -m services.manage`), and
every action is recorded with who, what, when and why."""

from __future__ import annotations

from functools import wraps
from http import HTTPStatus

from bson import ObjectId
from flask_jwt_extended import current_user
from pymongo import DESCENDING

from services.api.blueprint import LINK_HEADER, Blueprint, object_id_parameter
from services.api.currencies import requested_currency
from services.api.links import next_link
from services.api.queue import enqueue_or_leave
from services.api.runtime import runtime
from services.api.schemas.admin import (
    ReasonSchema,
    ReconciliationQuerySchema,
    ReconciliationSchema,
    RefundRequestSchema,
    RefundSchema,
    RequeuedSchema,
    UnrestrictSchema,
    WalletStateSchema,
    WebhookEventSchema,
    WebhookQuerySchema,
)
from shared.admin_actions import record_admin_action
from shared.errors import Conflict, DomainError, ErrorCode, Forbidden, NotFound
from shared.funding import inbox
from shared.funding.jobs import PROCESS_EVENT_TASK
from shared.funding.refunds import RefundRequest, refund_view
from shared.ledger import LedgerReads
from shared.ledger.accounts import receivable_id, wallet_id

blp = Blueprint("admin", __name__, url_prefix="/admin", description="Admin operations")

ADMIN_ROLE = "admin"


def admin_required(view):
    """A valid access token whose user holds the admin role now (not when the token was
    issued: a revoked admin loses access at once)."""

    @wraps(view)
    def guarded(*args, **kwargs):
        if current_user.get("role") != ADMIN_ROLE:
            raise Forbidden("This operation needs the admin role")
        return view(*args, **kwargs)

    return blp.errors(HTTPStatus.FORBIDDEN)(blp.token_required()(guarded))


def _actor() -> str:
    return str(current_user["_id"])


# ---- webhook review queue -------------------------------------------------------------


@blp.route("/webhooks", methods=["GET"])
@admin_required
@blp.arguments(WebhookQuerySchema, location="query")
@blp.response(200, WebhookEventSchema(many=True))
def webhooks(query: dict):
    """Webhook events needing review (malformed, ignored, unmatched, unconfirmed, failed),
    newest first."""
    statuses = [query["status"]] if "status" in query else list(inbox.REVIEW_STATUSES)
    cursor = (
        runtime.db()
        .webhook_events.find({"status": {"$in": statuses}})
        .sort("receivedAt", DESCENDING)
        .limit(query["limit"])
    )
    return [{**event, "id": str(event["_id"])} for event in cursor]


@blp.route(
    "/webhooks/<event_id>/requeue",
    methods=["POST"],
    parameters=[object_id_parameter("event_id")],
)
@admin_required
@blp.errors(HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT)
@blp.arguments(ReasonSchema)
@blp.response(202, RequeuedSchema)
def requeue_webhook(body: dict, event_id: str):
    """Process a reviewed event again, with a fresh retry window."""
    db = runtime.db()
    event = inbox.stored_event(db, _object_id(event_id, "webhook event"))
    if event is None:
        raise NotFound("No such webhook event", {"id": event_id})
    if event["status"] not in inbox.REVIEW_STATUSES or event["status"] == inbox.MALFORMED:
        raise Conflict(
            f"A {event['status']} event cannot be requeued",
            {"requeueable": [s for s in inbox.REVIEW_STATUSES if s != inbox.MALFORMED]},
            code=ErrorCode.INVALID_STATE,
        )
    record_admin_action(
        db,
        actor=_actor(),
        action="requeue_webhook",
        target=event_id,
        reason=body["reason"],
        effect=lambda session: inbox.revive_event(
            db, event["_id"], "requeued by an admin", session=session
        ),
    )
    # After the commit: the task must find the event revived.
    enqueued = enqueue_or_leave(PROCESS_EVENT_TASK, event_id=event_id)
    return {"id": event_id, "status": inbox.RECEIVED, "enqueued": enqueued}


# ---- wallets ---------------------------------------------------------------------------


@blp.route(
    "/wallets/<user_id>/unrestrict", methods=["POST"], parameters=[object_id_parameter("user_id")]
)
@admin_required
@blp.errors(HTTPStatus.NOT_FOUND)
@blp.arguments(UnrestrictSchema)
@blp.response(200, WalletStateSchema)
def unrestrict_wallet(body: dict, user_id: str):
    """Lift a wallet's restriction by hand (what the user owes, if anything, stays owed)."""
    ledger = runtime.ledger()
    owner = _object_id(user_id, "user")
    currency = requested_currency(body.get("currency"))
    account_id = wallet_id(owner, currency)
    if not ledger.reads.exists(account_id):
        raise NotFound("This user has no wallet in this currency", {"currency": currency})
    record_admin_action(
        runtime.db(),
        actor=_actor(),
        action="unrestrict_wallet",
        target=account_id,
        reason=body["reason"],
        effect=lambda session: ledger.set_restricted(
            account_id, False, f"lifted by an admin: {body['reason']}", session=session
        ),
    )
    return _wallet_state(ledger.reads, account_id, owner, currency)


def _wallet_state(reads: LedgerReads, account_id: str, owner: ObjectId, currency: str) -> dict:
    wallet = reads.wallet(account_id)
    return {
        "account": account_id,
        "currency": currency,
        "balance": wallet.balance,
        "available": wallet.available,
        "owed": max(0, -reads.balance(receivable_id(owner, currency))),
        "restricted": wallet.restricted,
        "restrictedReason": wallet.restricted_reason,
    }


# ---- refunds ---------------------------------------------------------------------------


@blp.route("/fundings/<payment_reference>/refunds", methods=["POST"])
@admin_required
@blp.errors(
    HTTPStatus.PAYMENT_REQUIRED,
    HTTPStatus.NOT_FOUND,
    HTTPStatus.CONFLICT,
    HTTPStatus.UNPROCESSABLE_ENTITY,
    HTTPStatus.BAD_GATEWAY,
    HTTPStatus.SERVICE_UNAVAILABLE,
)
@blp.arguments(RefundRequestSchema)
@blp.response(201, RefundSchema)
def refund_funding(body: dict, payment_reference: str):
    """Refund a credited funding through Monnify, in full or in part. The amount is held
    in the wallet until Monnify reports the refund completed (then it leaves) or failed
    (then it is released)."""
    db = runtime.db()
    request = RefundRequest(
        payment_reference=payment_reference,
        amount_minor=body.get("amount"),
        reason=body["reason"],
        customer_note=body.get("customerNote"),
        requested_by=current_user["_id"],
    )
    try:
        # Records the action with the refund it opens, in one transaction.
        refund = runtime.refunds().start(request)
    except DomainError as exc:
        if "refundReference" not in (exc.details or {}):  # refused before it was opened
            record_admin_action(
                db,
                actor=_actor(),
                action="refund_funding",
                target=payment_reference,
                reason=body["reason"],
                details={"refused": exc.message, "status": exc.status},
            )
        raise
    return refund_view(refund)


# ---- reconciliation --------------------------------------------------------------------


@blp.route("/reconciliation", methods=["GET"])
@admin_required
@blp.arguments(ReconciliationQuerySchema, location="query")
@blp.response(200, ReconciliationSchema, headers=LINK_HEADER)
def reconciliation(query: dict):
    """The latest daily report (or the given day's) and that day's discrepancies, by kind
    and subject; the next page is in the Link header."""
    db = runtime.db()
    day_selector = {"day": query["day"].isoformat()} if "day" in query else {}
    report = db.reconciliation_reports.find_one(day_selector, sort=[("day", DESCENDING)])
    if report is None:
        return {"latestReport": None, "discrepancies": []}
    selector: dict = {"day": report["day"]}
    if "kind" in query:
        selector["kind"] = query["kind"]
    if "cursor" in query:
        selector["_id"] = {"$gt": query["cursor"]}
    rows = list(db.reconciliation_discrepancies.find(selector).sort("_id").limit(query["limit"]))
    cursor = rows[-1]["_id"] if len(rows) == query["limit"] else None
    body = {"latestReport": report, "discrepancies": [{**row, "id": row["_id"]} for row in rows]}
    return body, 200, next_link(cursor)


def _object_id(value: str, what: str) -> ObjectId:
    if not ObjectId.is_valid(value):
        raise NotFound(f"No such {what}", {"id": value})
    return ObjectId(value)
