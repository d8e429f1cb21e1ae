"""Payouts: the bank list, your payout account, and withdrawals to it (Monnify
disbursements). The money is held here; a worker sends the transfer."""

from __future__ import annotations

from http import HTTPStatus

from flask_jwt_extended import current_user

from services.api.blueprint import Blueprint
from services.api.links import next_link
from services.api.queue import enqueue_or_leave
from services.api.runtime import runtime
from services.api.schemas.payouts import (
    AuthorizeSchema,
    BankSchema,
    PayoutAccountRequestSchema,
    PayoutAccountSchema,
    WithdrawalHeaderSchema,
    WithdrawalRequestSchema,
    WithdrawalSchema,
    WithdrawalsQuerySchema,
)
from shared.pagination import decode_position, next_cursor
from shared.payouts.banks import bank_list, payout_account, set_payout_account
from shared.payouts.jobs import SEND_WITHDRAWAL_TASK
from shared.payouts.withdrawals import WithdrawalRequest, view

blp = Blueprint("withdrawals", __name__, description="Banks, payout account and withdrawals")


def _banks() -> list[dict[str, str]]:
    ttl = runtime.settings().payouts.banks_cache_seconds
    return bank_list(runtime.redis_client(), runtime.monnify(), ttl)


@blp.route("/banks", methods=["GET"])
@blp.token_required()
@blp.response(200, BankSchema(many=True))
def banks():
    """The banks a payout account may be at (Monnify's list, cached)."""
    return _banks()


@blp.route("/users/me/payout-account", methods=["GET"])
@blp.token_required()
@blp.response(200, PayoutAccountSchema)
@blp.errors(HTTPStatus.CONFLICT)
def get_payout_account():
    """Where your withdrawals go; 409 until you set one."""
    return payout_account(runtime.db(), current_user["_id"])


@blp.route("/users/me/payout-account", methods=["PUT"])
@blp.token_required()
@blp.arguments(PayoutAccountRequestSchema)
@blp.response(200, PayoutAccountSchema)
@blp.errors(HTTPStatus.BAD_REQUEST, HTTPStatus.UNPROCESSABLE_ENTITY)
def put_payout_account(body: dict):
    """Set the bank account withdrawals go to. The bank's name for it is looked up
    through Monnify, returned and stored; 422 if the bank can't resolve it."""
    return set_payout_account(
        runtime.db(),
        _banks(),
        runtime.monnify(),
        current_user["_id"],
        body["bankCode"],
        body["accountNumber"],
    )


@blp.route("/wallet/withdrawals", methods=["POST"])
@blp.token_required()
@blp.arguments(WithdrawalHeaderSchema, location="headers")
@blp.arguments(WithdrawalRequestSchema)
@blp.response(202, WithdrawalSchema)
@blp.errors(
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.PAYMENT_REQUIRED,
    HTTPStatus.FORBIDDEN,
    HTTPStatus.CONFLICT,
    HTTPStatus.UNPROCESSABLE_ENTITY,
)
def withdraw(headers: dict, body: dict):
    """Withdraw to your payout account: amount plus WITHDRAWAL_FEE is held at once and the
    transfer is sent by a worker; follow it at GET /wallet/withdrawals/<reference>.
    The same Idempotency-Key replays the first answer."""
    request = WithdrawalRequest(
        user_id=current_user["_id"],
        amount_minor=body["amount"],
        currency=body.get("currency") or runtime.settings().default_currency,
        idempotency_key=headers["idempotency_key"],
    )
    answer = runtime.withdrawals().request(request)
    # Recorded first: if the broker is down, the poller sends it.
    enqueue_or_leave(SEND_WITHDRAWAL_TASK, reference=answer["reference"])
    return answer


@blp.route("/wallet/withdrawals", methods=["GET"])
@blp.token_required()
@blp.arguments(WithdrawalsQuerySchema, location="query")
@blp.response(200, WithdrawalSchema(many=True))
def list_withdrawals(query: dict):
    """Your withdrawals, newest first; the next page's cursor is in the Link header."""
    limit = query["limit"]
    repo = runtime.withdrawals().repo
    page = repo.page(current_user["_id"], limit, decode_position(query.get("cursor")))
    return [view(w) for w in page], 200, next_link(next_cursor(page, limit))


@blp.route("/wallet/withdrawals/<reference>", methods=["GET"])
@blp.token_required()
@blp.response(200, WithdrawalSchema)
@blp.errors(HTTPStatus.NOT_FOUND)
def get_withdrawal(reference: str):
    """One of your withdrawals."""
    return view(runtime.withdrawals().owned(current_user["_id"], reference))


@blp.route("/wallet/withdrawals/<reference>/authorize", methods=["POST"])
@blp.token_required()
@blp.arguments(AuthorizeSchema)
@blp.response(200, WithdrawalSchema)
@blp.errors(HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT, HTTPStatus.UNPROCESSABLE_ENTITY)
def authorize(body: dict, reference: str):
    """Authorize a withdrawal Monnify holds for an OTP (status awaiting_authorization)."""
    return runtime.withdrawals().authorize(current_user["_id"], reference, body["otp"])
