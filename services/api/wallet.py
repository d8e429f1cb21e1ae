"""Wallet: balance and transaction history (reads), funding (issue 4)."""

from __future__ import annotations

from flask_jwt_extended import current_user, jwt_required

from services.api import context
from services.api.blueprint import Blueprint
from services.api.links import next_link
from shared.funding.fundings import FundingRequest, start_funding
from shared.indexes import HISTORY_INDEX
from shared.ledger.accounts import new_account_document, wallet_id
from shared.money import check_amount_bounds
from shared.pagination import NEWEST_FIRST, next_cursor, older_than
from shared.schemas.payments import FundRequestSchema, FundResponseSchema, IdempotencyHeaderSchema
from shared.schemas.wallet import (
    BalanceSchema,
    CurrencyQuerySchema,
    TransactionSchema,
    TransactionsQuerySchema,
)

blp = Blueprint("wallet", __name__, url_prefix="/wallet", description="Wallet balance and history")


def _currency(query: dict) -> str:
    return query.get("currency") or context.settings().default_currency


@blp.route("/balance", methods=["GET"])
@jwt_required()
@blp.arguments(CurrencyQuerySchema, location="query")
@blp.response(200, BalanceSchema)
def balance(query: dict):
    """The wallet's posted balance, what is held by open holds, and what is available."""
    currency = _currency(query)
    account_id = wallet_id(current_user["_id"], currency)
    # A read writes nothing: a wallet no money has reached yet reads as empty.
    account = context.db().accounts.find_one({"_id": account_id}) or new_account_document(
        account_id, currency
    )
    return {
        "balance": account["balance"],
        "held": account["held"],
        "available": account["balance"] - account["held"],
        "currency": account["currency"],
        "restricted": account.get("restricted", False),
    }


@blp.route("/transactions", methods=["GET"])
@jwt_required()
@blp.arguments(TransactionsQuerySchema, location="query")
@blp.response(200, TransactionSchema(many=True))
def transactions(query: dict):
    """The wallet's postings, newest first; the next page's cursor is in the Link header."""
    limit = query["limit"]
    selector = {"account": wallet_id(current_user["_id"], _currency(query))}
    if "type" in query:
        selector["type"] = query["type"]
    if "status" in query:
        selector["status"] = query["status"]
    selector.update(older_than(query.get("cursor")))
    cursor = context.db().postings.find(selector).sort(NEWEST_FIRST).hint(HISTORY_INDEX)
    page = list(cursor.limit(limit))
    body = [_transaction(posting) for posting in page]
    return body, 200, next_link(next_cursor(page, limit))


def _transaction(posting: dict) -> dict:
    return {
        "id": str(posting["_id"]),
        "type": posting["type"],
        "amount": abs(int(posting["amount"])),
        "currency": posting["currency"],
        "reference": posting["reference"],
        "status": posting["status"],
        "description": posting.get("description", ""),
        "balanceAfter": posting["balanceAfter"],
        "createdAt": posting["createdAt"],
    }


@blp.route("/fund", methods=["POST"])
@jwt_required()
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.arguments(FundRequestSchema)
@blp.response(201, FundResponseSchema)
def fund(headers: dict, body: dict):
    """Start a funding through Monnify: pay by bank transfer to the account, or at checkoutUrl.

    The wallet is credited when Monnify confirms the payment, for what was actually paid.
    """
    current = context.settings()
    currency = _currency(body)
    check_amount_bounds(body["amount"], current.min_funding_minor, current.max_amount_minor)
    request = FundingRequest(
        user_id=current_user["_id"],
        email=body.get("email") or current_user["email"],
        amount_minor=body["amount"],
        currency=currency,
        idempotency_key=headers.get("idempotency_key"),
    )
    return start_funding(context.db(), context.monnify(), request)
