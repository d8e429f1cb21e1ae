"""JWT rules: short-lived access tokens, refresh tokens, a Redis blocklist for logout,
and every token failure answered 401 in the common error shape (flask-jwt-extended
answers some with 422 by default)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_jwt_extended import create_access_token, create_refresh_token, get_jwt

from services.api import context
from services.api.errors import error_response
from services.api.extensions import jwt
from shared.users import find_active_user

_REVOKED_PREFIX = "jwt:revoked:"


def issue_tokens(user: dict[str, Any]) -> dict[str, Any]:
    identity = str(user["_id"])
    return {
        "access_token": create_access_token(identity=identity),
        "refresh_token": create_refresh_token(identity=identity),
        "user": {"id": identity, "email": user["email"]},
    }


def revoke_current_token() -> None:
    claims = get_jwt()
    ttl = max(int(claims["exp"]) - int(claims["iat"]), 1)
    context.redis_client().set(_REVOKED_PREFIX + claims["jti"], 1, ex=ttl)


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
    jwt.init_app(app)

    @jwt.token_in_blocklist_loader
    def _is_revoked(_header: dict, payload: dict) -> bool:
        return bool(context.redis_client().exists(_REVOKED_PREFIX + payload["jti"]))

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
