"""Users: your own per-minute rate, the price others pay to call you, and your KYC."""

from __future__ import annotations

from http import HTTPStatus

from flask_jwt_extended import current_user

from services.api.blueprint import Blueprint
from services.api.runtime import runtime
from services.api.schemas.calls import RateSchema, RateViewSchema
from services.api.schemas.funding_accounts import KycSchema, KycViewSchema
from shared.calls.rates import clear_rate, rate_of, set_rate
from shared.kyc import KycNumber, save_kyc

blp = Blueprint("users", __name__, url_prefix="/users", description="Your profile as a callee")


def _rate_view(user: dict) -> dict:
    settings = runtime.settings()
    return {
        "ratePerMinute": rate_of(user, settings.calls),
        "currency": settings.default_currency,
        "isDefault": user.get("ratePerMinute") is None,
    }


@blp.route("/me/rate", methods=["GET"])
@blp.token_required()
@blp.response(200, RateViewSchema)
def get_rate():
    """What callers pay per minute to call you."""
    return _rate_view(current_user)


@blp.route("/me/rate", methods=["PUT"])
@blp.token_required()
@blp.arguments(RateSchema)
@blp.response(200, RateViewSchema)
@blp.errors(HTTPStatus.BAD_REQUEST)
def put_rate(body: dict):
    """Set your per-minute rate, within the configured bounds. Calls already running
    keep the rate they started with."""
    rate = set_rate(
        runtime.db(), current_user["_id"], body["ratePerMinute"], runtime.settings().calls
    )
    return _rate_view({**current_user, "ratePerMinute": rate})


@blp.route("/me/rate", methods=["DELETE"])
@blp.token_required()
@blp.response(200, RateViewSchema)
def delete_rate():
    """Go back to the default rate."""
    clear_rate(runtime.db(), current_user["_id"])
    return _rate_view({key: value for key, value in current_user.items() if key != "ratePerMinute"})


@blp.route("/me/kyc", methods=["PUT"])
@blp.token_required()
@blp.arguments(KycSchema)
@blp.response(200, KycViewSchema)
@blp.errors(HTTPStatus.BAD_REQUEST)
def put_kyc(body: dict):
    """Give your BVN or NIN (exactly one, 11 digits), which a funding account needs.
    It is stored encrypted and never shown again: the answer has its last 4 digits."""
    kind = "bvn" if "bvn" in body else "nin"
    kyc = KycNumber(kind, body[kind])
    return save_kyc(runtime.db(), runtime.kyc_vault(), current_user["_id"], kyc)
