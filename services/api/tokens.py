"""JWT rules: short-lived access tokens, refresh tokens, sessions that logout, reuse of a
refresh token and logout-all end, and every token failure answered 401 in the common
error shape (flask-jwt-extended answers some with 422 by default).

Every token carries a session id (`sid`) shared by the access and refresh tokens of one
login and by the tokens refreshed from them, and the user's session version (`sv`). The
sessions live in MongoDB (shared/auth_sessions.py): logout ends the session, so neither
the access token nor the refresh token of that login works afterwards; refresh rotates
the session's one valid refresh token, and a used one presented again ends the session;
a session never outlives SESSION_MAX_AGE_SECONDS, nor does any of its tokens.

A request is authenticated in one Redis round trip (the session's state and the user's
session version, both cached from MongoDB, and the user's disabled marker, see
shared/users.py) and reads no user: `current_user` is a `TokenUser`, whose id comes from
the token and whose document is read from Mongo only by the routes that use more than the
id (refresh, /auth/me, admin, rates, a funding without an email).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import redis
from bson import ObjectId
from flask import Flask
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    current_user,
    get_jwt,
)
from flask_jwt_extended.exceptions import WrongTokenError
from pymongo.database import Database

from services.api.errors import error_response
from services.api.runtime import runtime
from services.api.verified_tokens import CachingJWTManager
from shared import auth_sessions
from shared.auth_sessions import REVOKED_MESSAGE, Session
from shared.errors import ErrorCode, Unauthorized
from shared.users import (
    DISABLED_MARKER,
    DISABLED_MARKERS_SYNCED,
    find_active_user,
    sync_disabled_markers,
)

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
            self._document = find_active_user(runtime.db(), str(self._user_id))
            if self._document is None:
                raise Unauthorized(NO_USER_MESSAGE, code=ErrorCode.ACCOUNT_DISABLED)
        return self._document

    def __getitem__(self, key: str) -> Any:
        return self._user_id if key == "_id" else self._loaded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


def issue_tokens(user: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh access and refresh token pair, in a new session."""
    session = auth_sessions.start(
        runtime.db(), runtime.redis_client(), dict(user), runtime.settings().session_max_age_seconds
    )
    return _tokens(user, session)


def refresh_tokens() -> dict[str, Any]:
    """The next token pair of this request's session, whose refresh token then stops
    working; a refresh token used before ends the session instead (Unauthorized)."""
    claims = get_jwt()
    session = auth_sessions.rotate(
        runtime.db(), runtime.redis_client(), claims["sid"], claims["jti"]
    )
    return _tokens(current_user, session)


def _tokens(user: Mapping[str, Any], session: Session) -> dict[str, Any]:
    """No token outlives its session."""
    settings = runtime.settings()
    left = session.seconds_left()
    if left <= 0:
        raise Unauthorized(auth_sessions.EXPIRED_MESSAGE)
    identity = str(user["_id"])
    claims = {"sid": session.id, "sv": session.version}
    return {
        "access_token": create_access_token(
            identity=identity,
            additional_claims=claims,
            expires_delta=timedelta(seconds=min(settings.access_token_seconds, left)),
        ),
        "refresh_token": create_refresh_token(
            identity=identity,
            additional_claims={**claims, "jti": session.refresh_jti},
            expires_delta=timedelta(seconds=min(settings.refresh_token_seconds, left)),
        ),
        "user": {"id": identity, "email": user["email"]},
    }


def end_current_session() -> None:
    auth_sessions.end(runtime.db(), runtime.redis_client(), get_jwt()["sid"])


def end_every_session() -> None:
    auth_sessions.end_all(runtime.db(), runtime.redis_client(), current_user["_id"])


def token_refusal(redis_client: redis.Redis, db: Database, payload: dict[str, Any]) -> str | None:
    """Why the token is refused (its session ended, or its user disabled), None if it is
    not: one Redis round trip, and a MongoDB read only for what Redis has lost. Runs
    before the check that the token has a session id and version; a token without them
    is refused right after."""
    if not _has_session(payload) or not ObjectId.is_valid(payload["sub"]):
        return None  # refused as invalid by the verification and user loaders
    user_id = str(payload["sub"])
    session_keys = auth_sessions.cache_keys(payload["sid"], user_id)
    state, version, disabled, synced = redis_client.mget(
        *session_keys, DISABLED_MARKER + user_id, DISABLED_MARKERS_SYNCED
    )
    if not auth_sessions.is_live(db, redis_client, payload, (state, version)):
        return REVOKED_MESSAGE
    if disabled or (synced is None and _disabled_after_sync(redis_client, db, user_id)):
        return NO_USER_MESSAGE
    return None


def _refusal(payload: dict[str, Any]) -> str | None:
    return token_refusal(runtime.redis_client(), runtime.db(), payload)


def _has_session(payload: dict[str, Any]) -> bool:
    return isinstance(payload.get("sid"), str) and type(payload.get("sv")) is int


def _disabled_after_sync(redis_client: redis.Redis, db: Database, user_id: str) -> bool:
    """Redis has lost the markers (or never had them): write them from Mongo, then look."""
    sync_disabled_markers(db, redis_client)
    return bool(redis_client.exists(DISABLED_MARKER + user_id))


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
    def _verified(_header: dict, payload: dict) -> bool:
        return _has_session(payload)

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
