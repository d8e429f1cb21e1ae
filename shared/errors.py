"""Domain errors. Each carries the HTTP status the gateway answers with, so one handler
turns any of them into the common JSON error shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


class DomainError(Exception):
    status = 400
    error = "Bad Request"

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(DomainError):
    pass


class Unauthorized(DomainError):
    status = 401
    error = "Unauthorized"


class PaymentRequired(DomainError):
    status = 402
    error = "Payment Required"


class Forbidden(DomainError):
    status = 403
    error = "Forbidden"


class NotFound(DomainError):
    status = 404
    error = "Not Found"


class Conflict(DomainError):
    status = 409
    error = "Conflict"


class UpstreamError(DomainError):
    """A provider we depend on (Monnify) failed or answered nonsense."""

    status = 502
    error = "Bad Gateway"


class UpstreamUnavailable(UpstreamError):
    status = 503
    error = "Service Unavailable"


def refusal_or_result(call: Callable[..., _T], *args: Any) -> _T | DomainError:
    """One item of a batch: its domain error is its answer, not the whole batch's."""
    try:
        return call(*args)
    except DomainError as exc:
        return exc
