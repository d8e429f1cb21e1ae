"""JWT rules: short-lived access tokens, refresh tokens, a Redis blocklist for logout,
and every token failure answered 401 in the common error shape (flask-jwt-extended
answers some with 422 by default).

Every token carries a session id (`sid`) shared by the access and refresh tokens of one
login and by the tokens refreshed from them. Logout revokes the session, so neither the
access token nor the refresh token of that login works afterwards; refresh revokes the
refresh token it used, so each refresh token works once.

A request is authenticated in one Redis round trip (the blocklist and the user's disabled
marker, see shared/users.py) and reads no user: `current_user` is a `TokenUser`, whose id
comes from the token and whose document is read from Mongo only by the routes that use
more than the id (refresh, /auth/me, admin, rates, a funding without an email).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from bson import ObjectId
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
from services.api.verified_tokens import CachingJWTManager
from shared.errors import ErrorCode, Unauthorized
from shared.users import (
    DISABLED_MARKER,
    DISABLED_MARKERS_SYNCED,
    find_active_user,
    sync_disabled_markers,
)

_REVOKED_TOKEN = "jwt:revoked:"
_REVOKED_SESSION = "jwt:revoked-session:"
REVOKED_MESSAGE = "Token has been revoked"
NO_USER_MESSAGE = "The account behind this token no longer exists or is disabled"
_REFUSAL_CODES = {
    REVOKED_MESSAGE: ErrorCode.TOKEN_REVOKED,
    NO_USER_MESSAGE: ErrorCode.ACCOUNT_DISABLED,
}


class TokenUser(Mapping[str, Any]):
    """The user behind the token: the id at once, the rest of the document from Mongo on
    first use, refused then if the user has gone or been disabled meanwhile."""

    def __init__(self, user_id: ObjectId) -> None:
        self._user_id = user_id
        self._document: dict[str, Any] | None = None

    def _loaded(self) -> dict[str, Any]:
        if self._document is None:
            self._document = find_active_user(context.db(), str(self._user_id))
            if self._document is None:
                raise Unauthorized(NO_USER_MESSAGE, code=ErrorCode.ACCOUNT_DISABLED)
        return self._document

    def __getitem__(self, key: str) -> Any:
        return self._user_id if key == "_id" else self._loaded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


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


def _refusal(payload: dict[str, Any]) -> str | None:
    """Why the token is refused (revoked, or its user disabled), None if it is not: one
    round trip. Runs before the check that the token has a session id; a token without
    one is refused right after."""
    user_id = str(payload["sub"])
    revoked_token, revoked_session, disabled, synced = context.redis_client().mget(
        _REVOKED_TOKEN + str(payload["jti"]),
        _REVOKED_SESSION + str(payload.get("sid")),
        DISABLED_MARKER + user_id,
        DISABLED_MARKERS_SYNCED,
    )
    if revoked_token or revoked_session:
        return REVOKED_MESSAGE
    if disabled or (synced is None and _disabled_after_sync(user_id)):
        return NO_USER_MESSAGE
    return None


def _disabled_after_sync(user_id: str) -> bool:
    """Redis has lost the markers (or never had them): write them from Mongo, then look."""
    client = context.redis_client()
    sync_disabled_markers(context.db(), client)
    return bool(client.exists(DISABLED_MARKER + user_id))


def _unauthorized(message: str, code: ErrorCode = ErrorCode.UNAUTHORIZED):
    return error_response(401, message, code=code)


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
    _register_loaders(CachingJWTManager(app))
    # flask-jwt-extended answers a refresh token sent as an access token (and the reverse)
    # through the generic invalid-token loader; say which kind was expected instead.
    app.register_error_handler(WrongTokenError, lambda exc: _unauthorized(str(exc)))


def _register_loaders(jwt: JWTManager) -> None:
    @jwt.token_in_blocklist_loader
    def _blocked(_header: dict, payload: dict) -> bool:
        return _refusal(payload) is not None

    @jwt.token_verification_loader
    def _has_session(_header: dict, payload: dict) -> bool:
        return isinstance(payload.get("sid"), str)

    @jwt.user_lookup_loader
    def _load_user(_header: dict, payload: dict) -> TokenUser | None:
        return TokenUser(ObjectId(payload["sub"])) if ObjectId.is_valid(payload["sub"]) else None

    @jwt.unauthorized_loader
    def _missing(_reason: str):
        return _unauthorized("Missing or malformed Authorization header (Bearer token)")

    @jwt.invalid_token_loader
    def _invalid(_reason: str):
        return _unauthorized("Invalid token")

    @jwt.expired_token_loader
    def _expired(_header: dict, _payload: dict):
        return _unauthorized("Token has expired", ErrorCode.TOKEN_EXPIRED)

    @jwt.revoked_token_loader
    def _revoked(_header: dict, payload: dict):
        # Asked again (only on refusal) to say which: a logout or a disabled account.
        message = _refusal(payload) or REVOKED_MESSAGE
        return _unauthorized(message, _REFUSAL_CODES.get(message, ErrorCode.TOKEN_REVOKED))

    @jwt.user_lookup_error_loader
    def _no_user(_header: dict, _payload: dict):
        return _unauthorized(NO_USER_MESSAGE, ErrorCode.ACCOUNT_DISABLED)

    @jwt.token_verification_failed_loader
    def _failed(_header: dict, _payload: dict):
        return _unauthorized("Invalid token")
