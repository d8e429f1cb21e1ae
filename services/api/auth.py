"""Authentication: signup, login, refresh, logout, me (paths and shapes of the original API)."""

from __future__ import annotations

import hashlib
from http import HTTPStatus

from flask import request
from flask_jwt_extended import current_user

from services.api.blueprint import Blueprint
from services.api.extensions import limiter
from services.api.runtime import runtime
from services.api.schemas.auth import CredentialsSchema, MeSchema, TokensSchema
from services.api.tokens import (
    end_current_session,
    end_every_session,
    issue_tokens,
    refresh_tokens,
)
from shared.errors import ErrorCode, Unauthorized
from shared.ledger.accounts import open_wallet
from shared.users import authenticate, create_user

blp = Blueprint("auth", __name__, url_prefix="/auth", description="Accounts and tokens")


def _email_in_body() -> str | None:
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email.strip():
        return None
    return email.strip().lower()[:254]


def _email_key() -> str:
    """Rate-limit key per email, so one account can't be brute-forced from many IPs.
    Hashed: the key shows up in Redis and in the limiter's log lines."""
    digest = hashlib.sha256(str(_email_in_body()).encode()).hexdigest()[:32]
    return f"email:{digest}"


def _without_email() -> bool:
    """Bodies without an email (rejected anyway) count against the IP limit only."""
    return _email_in_body() is None


def _signup_limit() -> str:
    return runtime.settings().signup_rate_limit


def _login_limit() -> str:
    return runtime.settings().login_rate_limit


@blp.route("/signup", methods=["POST"])
@limiter.limit(_signup_limit)
@limiter.limit(_signup_limit, key_func=_email_key, exempt_when=_without_email)
@blp.arguments(CredentialsSchema)
@blp.response(201, TokensSchema)
@blp.errors(HTTPStatus.CONFLICT, HTTPStatus.TOO_MANY_REQUESTS)  # CONFLICT: the email is taken
def signup(credentials: dict):
    """Create an account and its NGN wallet; answers the tokens."""
    db = runtime.db()
    user = create_user(db, credentials["email"], credentials["password"])
    open_wallet(db, user["_id"], runtime.settings().default_currency)
    return issue_tokens(user)


@blp.route("/login", methods=["POST"])
@limiter.limit(_login_limit)
@limiter.limit(_login_limit, key_func=_email_key, exempt_when=_without_email)
@blp.arguments(CredentialsSchema)
@blp.response(200, TokensSchema)
@blp.errors(HTTPStatus.UNAUTHORIZED, HTTPStatus.TOO_MANY_REQUESTS)
def login(credentials: dict):
    """Exchange email and password for tokens. Unknown email and wrong password look alike."""
    user = authenticate(runtime.db(), credentials["email"], credentials["password"])
    if user is None:
        raise Unauthorized("Invalid email or password", code=ErrorCode.INVALID_CREDENTIALS)
    return issue_tokens(user)


@blp.route("/refresh", methods=["POST"])
@blp.token_required(refresh=True)
@blp.response(200, TokensSchema)
def refresh():
    """A new access and refresh token for a valid refresh token, which then stops working.
    A refresh token presented again after it was used ends its whole session (someone
    else may hold a copy): the newest tokens of that login stop working too. A session
    can't be refreshed past SESSION_MAX_AGE_SECONDS after its login."""
    return refresh_tokens()


@blp.route("/logout", methods=["POST"])
@blp.token_required(verify_type=False)
@blp.response(204)
def logout():
    """End the session of the token sent (access or refresh): all its tokens stop working."""
    end_current_session()


@blp.route("/logout-all", methods=["POST"])
@blp.token_required(verify_type=False)
@blp.response(204)
def logout_all():
    """End every session of the user (every device): all access and refresh tokens
    issued before this stop working."""
    end_every_session()


@blp.route("/me", methods=["GET"])
@blp.token_required()
@blp.response(200, MeSchema)
def me():
    """The authenticated user."""
    return {
        "id": str(current_user["_id"]),
        "email": current_user["email"],
        "role": current_user.get("role", "user"),
        "createdAt": current_user["createdAt"],
    }
