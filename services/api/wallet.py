"""Wallet: balance and transaction history (reads), funding (issue 4), and the
permanent funding account (a Monnify reserved account)."""

from __future__ import annotations

from http import HTTPStatus

from flask_jwt_extended import current_user, jwt_required

from services.api.blueprint import LINK_HEADER, Blueprint
from services.api.currencies import requested_currency
from services.api.links import next_link
from services.api.runtime import runtime
from services.api.schemas.funding_accounts import FundingAccountSchema
from services.api.schemas.payments import (
    FundRequestSchema,
    FundResponseSchema,
    IdempotencyHeaderSchema,
)
from services.api.schemas.wallet import (
    BalanceSchema,
    CurrencyQuerySchema,
    TransactionSchema,
    TransactionsQuerySchema,
)
from shared.funding.fundings import FundingRequest, start_funding
from shared.ledger import HistoryItem, wallet_id
from shared.money import check_amount_bounds
from shared.pagination import decode_position, encode_cursor

blp = Blueprint("wallet", __name__, url_prefix="/wallet", description="Wallet balance and history")


def _currency(query: dict) -> str:
    return requested_currency(query.get("currency"))


@blp.route("/balance", methods=["GET"])
@jwt_required()
@blp.arguments(CurrencyQuerySchema, location="query")
@blp.response(200, BalanceSchema)
def balance(query: dict):
    """The wallet's posted balance, what is held by open holds, and what is available."""
    wallet = runtime.ledger_reads().wallet(wallet_id(current_user["_id"], _currency(query)))
    return {
        "balance": wallet.balance,
        "held": wallet.held,
        "available": wallet.available,
        "currency": wallet.currency,
        "restricted": wallet.restricted,
    }


@blp.route("/transactions", methods=["GET"])
@jwt_required()
@blp.arguments(TransactionsQuerySchema, location="query")
@blp.response(200, TransactionSchema(many=True), headers=LINK_HEADER)
def transactions(query: dict):
    """The wallet's movements, newest first; the next page's cursor is in the Link header.
    Every movement the ledger records has succeeded: `status` is always `success`."""
    limit = query["limit"]
    page = runtime.ledger_reads().history(
        wallet_id(current_user["_id"], _currency(query)),
        limit,
        after=decode_position(query.get("cursor")),
        kind=query.get("type"),
    )
    body = [_transaction(item) for item in page]
    last = {"createdAt": page[-1].created_at, "_id": page[-1].id} if page else None
    return body, 200, next_link(encode_cursor(last) if len(page) == limit else None)


def _transaction(item: HistoryItem) -> dict:
    return {
        "id": str(item.id),
        "type": item.type,
        "amount": item.amount,
        "currency": item.currency,
        "reference": item.reference,
        "status": item.status,
        "description": item.description,
        "balanceAfter": item.balance_after,
        "createdAt": item.created_at,
    }


@blp.route("/fund", methods=["POST"])
@jwt_required()
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.arguments(FundRequestSchema)
@blp.response(201, FundResponseSchema)
@blp.errors(HTTPStatus.CONFLICT, HTTPStatus.BAD_GATEWAY, HTTPStatus.SERVICE_UNAVAILABLE)
def fund(headers: dict, body: dict):
    """Start a funding through Monnify: pay by bank transfer to the account, or at checkoutUrl.

    The wallet is credited when Monnify confirms the payment, for what was actually paid.
    """
    current = runtime.settings()
    currency = _currency(body)
    check_amount_bounds(body["amount"], current.min_funding_minor, current.max_amount_minor)
    request = FundingRequest(
        user_id=current_user["_id"],
        email=body.get("email") or current_user["email"],
        amount_minor=body["amount"],
        currency=currency,
        idempotency_key=headers.get("idempotency_key"),
    )
    return start_funding(runtime.db(), runtime.monnify(), request)


@blp.route("/funding-account", methods=["GET"])
@blp.token_required()
@blp.arguments(CurrencyQuerySchema, location="query")
@blp.response(200, FundingAccountSchema)
@blp.errors(HTTPStatus.BAD_REQUEST, HTTPStatus.CONFLICT, HTTPStatus.BAD_GATEWAY)
def funding_account(query: dict):
    """Your permanent bank accounts: every transfer into one credits your wallet.

    Reserved at Monnify on the first request (409 until you have given a BVN or NIN with
    PUT /users/me/kyc), then served as stored."""
    return runtime.reserved_accounts().funding_account(current_user, _currency(query))
