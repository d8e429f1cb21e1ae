"""Every error body carries a stable `code` from the documented list (shared.errors.
ErrorCode, the README's table, the OpenAPI Error enum), beside today's fields. One
request per error path that a client branches on; the fuzz test checks every answer it
provokes against the same list."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from flask_jwt_extended import create_access_token

from shared.errors import ErrorCode
from tests.support.users import unique_email

OBJECT_ID = "65a1b2c3d4e5f60718293a4b"


def _error(response, status: int, code: ErrorCode) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == code, body
    assert {"statusCode", "error", "message"} <= set(body)  # today's fields, unchanged
    assert body["statusCode"] == status
    return body


@pytest.mark.parametrize(
    "method, path, kwargs, status, code",
    [
        (
            "post",
            "/auth/signup",
            {"json": {"email": "nope", "password": "x"}},
            400,
            "validation_error",
        ),
        (
            "post",
            "/auth/signup",
            {"data": "{", "content_type": "application/json"},
            400,
            "invalid_json",
        ),
        (
            "post",
            "/auth/signup",
            {"data": "a=b", "content_type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        (
            "post",
            "/auth/signup",
            {"data": "x" * 70_000, "content_type": "application/json"},
            413,
            "payload_too_large",
        ),
        (
            "post",
            "/auth/login",
            {"json": {"email": "no@example.com", "password": "password123"}},
            401,
            "invalid_credentials",
        ),
        ("get", "/wallet/balance", {}, 401, "unauthorized"),
        ("get", "/no/such/route", {}, 404, "not_found"),
        ("delete", "/auth/signup", {}, 405, "method_not_allowed"),
        (
            "post",
            "/payments/monnify/webhook",
            {"json": {"eventType": "SUCCESSFUL_TRANSACTION"}},
            401,
            "invalid_signature",
        ),
    ],
)
def test_requests_without_a_session_answer_their_code(client, method, path, kwargs, status, code):
    _error(getattr(client, method)(path, **kwargs), status, ErrorCode(code))


def test_a_taken_email_is_email_taken(client, signup):
    email = unique_email()
    signup(email)
    response = client.post("/auth/signup", json={"email": email, "password": "password123"})
    _error(response, 409, ErrorCode.EMAIL_TAKEN)


def test_an_expired_token_is_token_expired(app, client, signup):
    _, body = signup()
    with app.app_context():
        token = create_access_token(
            identity=body["user"]["id"],
            additional_claims={"sid": "expired"},
            expires_delta=timedelta(seconds=-1),
        )
    response = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    _error(response, 401, ErrorCode.TOKEN_EXPIRED)


def test_a_logged_out_token_is_token_revoked(client, signup):
    headers, _ = signup()
    assert client.post("/auth/logout", headers=headers).status_code == 204
    _error(client.get("/auth/me", headers=headers), 401, ErrorCode.TOKEN_REVOKED)


def test_a_reused_refresh_token_is_token_revoked(client, signup):
    _, body = signup()
    refresh = {"Authorization": f"Bearer {body['refresh_token']}"}
    assert client.post("/auth/refresh", headers=refresh).status_code == 200
    _error(client.post("/auth/refresh", headers=refresh), 401, ErrorCode.TOKEN_REVOKED)


def test_a_users_call_to_an_admin_route_is_forbidden(client, signup):
    headers, _ = signup()
    _error(client.get("/admin/webhooks", headers=headers), 403, ErrorCode.FORBIDDEN)


def test_a_malformed_call_id_is_a_validation_error(client, signup):
    headers, _ = signup()
    _error(client.get("/calls/not-an-id", headers=headers), 400, ErrorCode.VALIDATION_ERROR)


def test_an_unknown_call_is_not_found(client, signup):
    headers, _ = signup()
    _error(client.get(f"/calls/{OBJECT_ID}", headers=headers), 404, ErrorCode.NOT_FOUND)


def test_a_rate_above_what_the_caller_accepts_is_rate_above_limit(client, party):
    caller, receiver = party(100_000), party()
    body = {"receiverId": receiver.id, "costPerMinute": 0.01}
    response = client.post("/calls/initiate", json=body, headers=caller.headers)
    _error(response, 409, ErrorCode.RATE_ABOVE_LIMIT)


def test_an_empty_wallet_is_insufficient_funds(client, party):
    caller, receiver = party(), party()
    response = client.post(
        "/calls/initiate", json={"receiverId": receiver.id}, headers=caller.headers
    )
    _error(response, 402, ErrorCode.INSUFFICIENT_FUNDS)


def test_a_reused_idempotency_key_is_idempotency_conflict(client, signup, monnify_sim):
    headers = {**signup()[0], "Idempotency-Key": uuid.uuid4().hex}
    assert client.post("/wallet/fund", json={"amount": 5000}, headers=headers).status_code == 201
    response = client.post("/wallet/fund", json={"amount": 6000}, headers=headers)
    _error(response, 409, ErrorCode.IDEMPOTENCY_CONFLICT)
