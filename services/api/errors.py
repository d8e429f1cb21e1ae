"""One JSON error shape for every failure: {"statusCode", "error", "code", "message",
"details"?}, `code` being one of shared.errors.ErrorCode.

Never an HTML page, never a stack trace. Unexpected exceptions are logged with their
trace and answered with a generic 500 message; Redis or MongoDB out of reach (a restart,
a stall, an election) is a 503 the client may retry, logged as a warning.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import Flask, Response, jsonify
from marshmallow import Schema, fields, validate
from pymongo.errors import ConnectionFailure, PyMongoError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

from shared.errors import DomainError, ErrorCode
from shared.logs import get_logger

log = get_logger(__name__)

_MESSAGES = {
    400: "The request is invalid",
    401: "Authentication required",
    404: "No such resource",
    405: "Method not allowed on this resource",
    413: "The request body is too large",
    415: "Request bodies must be JSON (Content-Type: application/json)",
    429: "Too many requests; slow down",
}

# The code of an error that names none: by its status.
_CODES = {
    400: ErrorCode.INVALID_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.RATE_LIMITED,
    502: ErrorCode.UPSTREAM_ERROR,
    503: ErrorCode.UPSTREAM_UNAVAILABLE,
}


def code_for_status(status: int) -> ErrorCode:
    fallback = ErrorCode.INVALID_REQUEST if status < 500 else ErrorCode.INTERNAL_ERROR
    return _CODES.get(status, fallback)


class ErrorSchema(Schema):
    """The one error shape, as documented in the OpenAPI document."""

    statusCode = fields.Integer(required=True, metadata={"example": 400})
    error = fields.String(required=True, metadata={"example": "Bad Request"})
    code = fields.String(
        required=True,
        validate=validate.OneOf([code.value for code in ErrorCode]),
        metadata={
            "example": "validation_error",
            "description": "Stable and machine-readable: branch on this, not on `message`",
        },
    )
    message = fields.String(required=True, metadata={"example": "Validation failed: email: ..."})
    details = fields.Dict(metadata={"description": "Per-field messages, or per-check states"})


def error_response(
    status: int,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    code: ErrorCode | None = None,
) -> tuple[Response, int]:
    body: dict[str, Any] = {
        "statusCode": status,
        "error": HTTPStatus(status).phrase,
        "code": str(code or code_for_status(status)),
        "message": message,
    }
    if details:
        body["details"] = details
    return jsonify(body), status


def _handle_domain_error(exc: DomainError) -> tuple[Response, int]:
    return error_response(exc.status, exc.message, exc.details, code=exc.code)


def _handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    details = None
    code = None
    data = getattr(exc, "data", None)  # set by flask-smorest/webargs on validation errors
    if isinstance(data, dict) and data.get("messages"):
        details = _flatten_locations(data["messages"])
        message = "Validation failed: " + _summarise(details)
        code = ErrorCode.VALIDATION_ERROR
    elif isinstance(data, dict) and data.get("message"):
        message = str(data["message"])
    elif status == 429:
        message = f"{_MESSAGES[429]} (limit: {exc.description})"
    else:
        message = _MESSAGES.get(status) or HTTPStatus(status).phrase
    response, _ = error_response(status, message, details, code=code)
    response.status_code = status
    for name, value in exc.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


OUTAGE_RETRY_AFTER_SECONDS = 1


def _is_outage(exc: Exception) -> bool:
    """A server we depend on is out of reach or asks for a retry: not our bug."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | ConnectionFailure):
        return True
    return isinstance(exc, PyMongoError) and any(
        exc.has_error_label(label) for label in ("TransientTransactionError", "RetryableWriteError")
    )


def _handle_unexpected(exc: Exception) -> tuple[Response, int]:
    if _is_outage(exc):
        log.warning("dependency_unavailable", error_type=type(exc).__name__)
        response, status = error_response(
            503, "A service the API depends on is unavailable; retry shortly"
        )
        response.headers["Retry-After"] = str(OUTAGE_RETRY_AFTER_SECONDS)
        return response, status
    log.exception("unhandled_error", error_type=type(exc).__name__)
    return error_response(500, "Internal server error; the request was not completed")


def _flatten_locations(messages: dict[str, Any]) -> dict[str, Any]:
    """webargs nests errors by location ({"json": {...}}); clients only need the fields."""
    flat: dict[str, Any] = {}
    for location, errors in messages.items():
        if isinstance(errors, dict):
            flat.update(errors)
        else:
            flat[location] = errors
    return flat


def _summarise(details: dict[str, Any]) -> str:
    parts = []
    for field, errors in details.items():
        text = errors[0] if isinstance(errors, list) and errors else errors
        parts.append(f"{field}: {text}")
    return "; ".join(str(part) for part in parts)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, _handle_domain_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
