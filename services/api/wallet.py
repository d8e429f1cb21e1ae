"""Wallet: balance and transaction history (reads), funding (issue 4)."""

from __future__ import annotations

from flask_jwt_extended import current_user, jwt_required

from services.api import context
from services.api.blueprint import Blueprint
from shared.ledger.accounts import open_wallet
from shared.schemas.wallet import BalanceSchema, CurrencyQuerySchema

blp = Blueprint("wallet", __name__, url_prefix="/wallet", description="Wallet balance and history")


def _currency(query: dict) -> str:
    return query.get("currency") or context.settings().default_currency


@blp.route("/balance", methods=["GET"])
@jwt_required()
@blp.arguments(CurrencyQuerySchema, location="query")
@blp.response(200, BalanceSchema)
def balance(query: dict):
    """The wallet's posted balance, what is held by open holds, and what is available."""
    db = context.db()
    account_id = open_wallet(db, current_user["_id"], _currency(query))
    account = db.accounts.find_one({"_id": account_id})
    return {
        "balance": account["balance"],
        "held": account["held"],
        "available": account["balance"] - account["held"],
        "currency": account["currency"],
        "restricted": account.get("restricted", False),
    }
