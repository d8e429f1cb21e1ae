"""Monnify's API as the client uses it: paths, envelope, fields and errors.

Every call but login needs a live bearer token (401 otherwise); login takes HTTP Basic
apiKey:secretKey. The fault mode set with `POST /sim/faults` applies here only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from typing import Any

from flask import Blueprint, Response, request

from services.monnify_sim.http import amount_minor, json_object, json_response, text
from services.monnify_sim.render import (
    bank_transfer_body,
    init_transaction_body,
    refund_body,
    response_code,
    transaction_body,
)
from services.monnify_sim.simulator import current_sim
from services.monnify_sim.state import MIN_AMOUNT_MINOR, PAYMENT_METHODS, ApiError

blp = Blueprint("monnify_api", __name__, url_prefix="/api")

LOGIN_PATH = "/api/v1/auth/login"
SUPPORTED_CURRENCIES = ("NGN",)


def envelope(body: Any) -> Response:
    return json_response(
        {
            "requestSuccessful": True,
            "responseMessage": "success",
            "responseCode": "0",
            "responseBody": body,
        }
    )


def error_envelope(error: ApiError) -> Response:
    code = response_code(error.code, current_sim().config)
    payload = {"requestSuccessful": False, "responseMessage": error.message, "responseCode": code}
    return json_response(payload, error.status)


@blp.errorhandler(ApiError)
def _api_error(error: ApiError) -> Response:
    return error_envelope(error)


@blp.before_request
def _faults_and_auth() -> Response | None:
    sim = current_sim()
    with sim.state.lock:
        fault = sim.state.fault.take()
    if fault == "down":
        return Response("Service Unavailable", status=503, mimetype="text/plain")
    if fault == "slow":
        time.sleep(sim.config.slow_seconds)
    if request.path == LOGIN_PATH:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not sim.state.token_valid(token.strip()):
        return json_response(
            {"error": "invalid_token", "error_description": "Access token expired or invalid"},
            401,
        )
    return None


@blp.after_request
def _record(response: Response) -> Response:
    state = current_sim().state
    with state.lock:
        state.requests.append(
            {"method": request.method, "path": request.path, "status": response.status_code}
        )
    return response


@blp.post("/v1/auth/login")
def login() -> Response:
    sim = current_sim()
    if not _basic_credentials_match(sim.config.api_key, sim.config.secret_key):
        raise ApiError(401, "Invalid client credentials")
    token, lifetime = sim.state.issue_token()
    return envelope({"accessToken": token, "expiresIn": lifetime})


def _basic_credentials_match(api_key: str, secret_key: str) -> bool:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, f"{api_key}:{secret_key}".encode())


@blp.post("/v1/merchant/transactions/init-transaction")
def init_transaction() -> Response:
    sim = current_sim()
    body = json_object()
    amount = amount_minor(body.get("amount"), "amount")
    email = text(body, "customerEmail")
    reference = text(body, "paymentReference")
    description = text(body, "paymentDescription")
    currency = (text(body, "currencyCode") or "").upper()
    contract_code = text(body, "contractCode")
    if "@" not in email:
        raise ApiError(400, "customerEmail must be a valid email address")
    methods = _payment_methods(body.get("paymentMethods"))
    meta_data = body.get("metaData", body.get("metadata")) or {}
    if not isinstance(meta_data, dict):
        raise ApiError(400, "metaData must be an object")
    if contract_code != sim.config.contract_code:
        raise ApiError(422, "Invalid contract code")
    if currency not in SUPPORTED_CURRENCIES:
        raise ApiError(422, f"Currency {currency} is not enabled for this merchant")
    if amount < MIN_AMOUNT_MINOR:
        raise ApiError(422, "Amount cannot be less than 20.00")
    transaction = sim.state.create_transaction(
        reference,
        amount_minor=amount,
        currency=currency,
        customer_name=text(body, "customerName", required=False) or email,
        customer_email=email,
        payment_description=description,
        redirect_url=text(body, "redirectUrl", required=False),
        payment_methods=methods,
        meta_data=meta_data,
    )
    return envelope(init_transaction_body(transaction, sim.config))


def _payment_methods(value: Any) -> list[str]:
    if value is None:
        return list(PAYMENT_METHODS)
    if not isinstance(value, list) or not value or not set(value) <= set(PAYMENT_METHODS):
        raise ApiError(400, f"paymentMethods must be a list of {', '.join(PAYMENT_METHODS)}")
    return value


@blp.post("/v1/merchant/bank-transfer/init-payment")
def init_bank_transfer() -> Response:
    sim = current_sim()
    reference = text(json_object(), "transactionReference")
    transaction = sim.state.assign_account(reference)
    return envelope(bank_transfer_body(transaction, sim.config))


@blp.get("/v2/transactions/<path:reference>")
def transaction_status(reference: str) -> Response:
    sim = current_sim()
    return envelope(transaction_body(sim.state.transaction(reference), sim.config))


@blp.get("/v2/merchant/transactions/query")
def transaction_query() -> Response:
    sim = current_sim()
    payment_reference = request.args.get("paymentReference", "").strip()
    transaction_reference = request.args.get("transactionReference", "").strip()
    if payment_reference:
        transaction = sim.state.transaction_by_payment_reference(payment_reference)
    elif transaction_reference:
        transaction = sim.state.transaction(transaction_reference)
    else:
        raise ApiError(400, "paymentReference or transactionReference is required")
    return envelope(transaction_body(transaction, sim.config))


@blp.post("/v1/refunds/initiate-refund")
def initiate_refund() -> Response:
    sim = current_sim()
    body = json_object()
    transaction_reference = text(body, "transactionReference")
    refund_reference = text(body, "refundReference")
    reason = text(body, "refundReason")
    raw_amount = body.get("refundAmount")
    amount = None if raw_amount is None else amount_minor(raw_amount, "refundAmount")
    refund = sim.state.create_refund(
        transaction_reference,
        refund_reference,
        amount,
        reason,
        text(body, "customerNote", required=False),
    )
    return envelope(refund_body(refund, sim.config))


@blp.get("/v1/refunds/<path:reference>")
def refund_status(reference: str) -> Response:
    sim = current_sim()
    return envelope(refund_body(sim.state.refund(reference), sim.config))
