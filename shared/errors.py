"""Domain errors. Each carries the HTTP status the gateway answers with and a stable
machine-readable code, so one handler turns any of them into the common JSON error shape."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

_T = TypeVar("_T")


class ErrorCode(StrEnum):
    """The `code` of every error body: stable, so clients branch on it, not on messages.
    Every one is documented in the README's table of error codes (a test keeps them equal)
    and as the enum of the OpenAPI Error schema."""

    VALIDATION_ERROR = "validation_error"
    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    UNAUTHORIZED = "unauthorized"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_REVOKED = "token_revoked"
    ACCOUNT_DISABLED = "account_disabled"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_SIGNATURE = "invalid_signature"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    WALLET_RESTRICTED = "wallet_restricted"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    EMAIL_TAKEN = "email_taken"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress"
    RATE_ABOVE_LIMIT = "rate_above_limit"
    CALL_LIMIT_REACHED = "call_limit_reached"
    BUSY = "busy"
    INVALID_STATE = "invalid_state"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    REFUND_REFUSED = "refund_refused"
    PROVIDER_REJECTED = "provider_rejected"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_STREAMS = "too_many_streams"
    INTERNAL_ERROR = "internal_error"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    NOT_READY = "not_ready"


class DomainError(Exception):
    """A refusal: its class gives the status and the default code; a raise may name a
    more precise code."""

    status = 400
    error = "Bad Request"
    code = ErrorCode.INVALID_REQUEST

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        code: ErrorCode | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class InvalidRequest(DomainError):
    pass


class Unauthorized(DomainError):
    status = 401
    error = "Unauthorized"
    code = ErrorCode.UNAUTHORIZED


class PaymentRequired(DomainError):
    status = 402
    error = "Payment Required"
    code = ErrorCode.INSUFFICIENT_FUNDS


class Forbidden(DomainError):
    status = 403
    error = "Forbidden"
    code = ErrorCode.FORBIDDEN


class NotFound(DomainError):
    status = 404
    error = "Not Found"
    code = ErrorCode.NOT_FOUND


class Conflict(DomainError):
    status = 409
    error = "Conflict"
    code = ErrorCode.CONFLICT


class UpstreamError(DomainError):
    """A provider we depend on (Monnify) failed or answered nonsense."""

    status = 502
    error = "Bad Gateway"
    code = ErrorCode.UPSTREAM_ERROR


class UpstreamUnavailable(UpstreamError):
    status = 503
    error = "Service Unavailable"
    code = ErrorCode.UPSTREAM_UNAVAILABLE


def refusal_or_result(call: Callable[..., _T], *args: Any) -> _T | DomainError:
    """One item of a batch: its domain error is its answer, not the whole batch's."""
    try:
        return call(*args)
    except DomainError as exc:
        return exc
