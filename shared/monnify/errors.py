"""Typed Monnify failures. Each is a DomainError, so the gateway's one handler answers it
with the common JSON shape; outages are UpstreamError/UpstreamUnavailable (502/503).

Messages carry Monnify's own words where it gave some, never a key, token or signature.
"""

from __future__ import annotations

from shared.errors import DomainError, ErrorCode, UpstreamError, UpstreamUnavailable


class MonnifyError(DomainError):
    """Base of every Monnify failure; catch this to handle them all."""

    def __init__(
        self,
        message: str,
        *,
        response_code: str | None = None,
        http_status: int | None = None,
    ):
        details = {"monnifyResponseCode": response_code} if response_code is not None else None
        super().__init__(message, details)
        self.response_code = response_code
        self.http_status = http_status


class MonnifyUnavailable(MonnifyError, UpstreamUnavailable):
    """Monnify could not be reached, timed out, or answered 5xx (after any retries)."""


class MonnifyProtocolError(MonnifyError, UpstreamError):
    """Monnify answered something we can't use: not JSON, no envelope, a field missing or
    malformed, or data that doesn't match what we sent."""


class MonnifyAuthError(MonnifyError, UpstreamError):
    """Monnify refused our credentials or a freshly issued token: a configuration problem."""


class MonnifyRejected(MonnifyError):
    """Monnify understood the request and refused it (requestSuccessful false, a 4xx), e.g.
    a refund R-code. `response_code` and the message are Monnify's."""

    status = 422
    error = "Unprocessable Entity"
    code = ErrorCode.PROVIDER_REJECTED


class MonnifyNotFound(MonnifyRejected):
    """The transaction or refund named does not exist at Monnify."""

    status = 404
    error = "Not Found"
    code = ErrorCode.NOT_FOUND
