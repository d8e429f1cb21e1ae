"""JWT rules: short-lived access tokens, refresh tokens, a Redis blocklist for logout,
and every token failure answered 401 in the common error shape (flask-jwt-extended
answers some with 422 by default).

Every token carries a session id (`sid`) shared by the access and refresh tokens of one
login and by the tokens refreshed from them. Logout revokes the session, so neither the
access token nor the refresh token of that login works afterwards; refresh revokes the
refresh token it used, so each refresh token works once.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Flask
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
)
from flask_jwt_extended.exceptions import WrongTokenError

from services.api import context
from services.api.errors import error_response
from shared.users import find_active_user

_REVOKED_TOKEN = "jwt:revoked:"
_REVOKED_SESSION = "jwt:revoked-session:"


def issue_tokens(user: dict[str, Any], session_id: str | None = None) -> dict[str, Any]:
    """A fresh access and refresh token pair; a new session unless one is continued."""
    identity = str(user["_id"])
    claims = {"sid": session_id or uuid.uuid4().hex}
    return {
        "access_token": create_access_token(identity=identity, additional_claims=claims),
        "refresh_token": create_refresh_token(identity=identity, additional_claims=claims),
        "user": {"id": identity, "email": user["email"]},
    }


def current_session_id() -> str:
    return get_jwt()["sid"]


def revoke_current_token() -> bool:
    """Blocklist the token of this request until it would have expired anyway. False if
    another request revoked it first (two refreshes racing with one token)."""
    claims = get_jwt()
    key = _REVOKED_TOKEN + claims["jti"]
    return bool(context.redis_client().set(key, 1, ex=_seconds_left(claims), nx=True))


def revoke_current_session() -> None:
    """Blocklist every token of this request's session. A session's tokens expire at the
    latest one refresh lifetime from now, so the entry need not outlive that."""
    ttl = context.settings().refresh_token_seconds
    context.redis_client().set(_REVOKED_SESSION + current_session_id(), 1, ex=ttl)


def _seconds_left(claims: dict[str, Any]) -> int:
    return max(int(claims["exp"]) - int(time.time()), 1)


def _is_revoked(payload: dict[str, Any]) -> bool:
    # Runs before the check that the token has a session id; a token without one is
    # refused right after.
    keys = [_REVOKED_TOKEN + str(payload["jti"]), _REVOKED_SESSION + str(payload.get("sid"))]
    return context.redis_client().exists(*keys) > 0


def _unauthorized(message: str):
    return error_response(401, message)


def configure_jwt(app: Flask) -> None:
    settings = app.extensions["settings"]
    app.config.update(
        JWT_SECRET_KEY=settings.jwt_secret,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ACCESS_TOKEN_EXPIRES=settings.access_token_seconds,
        JWT_REFRESH_TOKEN_EXPIRES=settings.refresh_token_seconds,
        JWT_ERROR_MESSAGE_KEY="message",
    )
    _register_loaders(JWTManager(app))
    # flask-jwt-extended answers a refresh token sent as an access token (and the reverse)
    # through the generic invalid-token loader; say which kind was expected instead.
    app.register_error_handler(WrongTokenError, lambda exc: _unauthorized(str(exc)))


def _register_loaders(jwt: JWTManager) -> None:
    @jwt.token_in_blocklist_loader
    def _blocked(_header: dict, payload: dict) -> bool:
        return _is_revoked(payload)

    @jwt.token_verification_loader
    def _has_session(_header: dict, payload: dict) -> bool:
        return isinstance(payload.get("sid"), str)

    @jwt.user_lookup_loader
    def _load_user(_header: dict, payload: dict) -> dict[str, Any] | None:
        return find_active_user(context.db(), payload["sub"])

    @jwt.unauthorized_loader
    def _missing(_reason: str):
        return _unauthorized("Missing or malformed Authorization header (Bearer token)")

    @jwt.invalid_token_loader
    def _invalid(_reason: str):
        return _unauthorized("Invalid token")

    @jwt.expired_token_loader
    def _expired(_header: dict, _payload: dict):
        return _unauthorized("Token has expired")

    @jwt.revoked_token_loader
    def _revoked(_header: dict, _payload: dict):
        return _unauthorized("Token has been revoked")

    @jwt.user_lookup_error_loader
    def _no_user(_header: dict, _payload: dict):
        return _unauthorized("The account behind this token no longer exists or is disabled")

    @jwt.token_verification_failed_loader
    def _failed(_header: dict, _payload: dict):
        return _unauthorized("Invalid token")
