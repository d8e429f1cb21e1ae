"""The currency a request names, checked against the deployment's."""

from __future__ import annotations

from services.api.runtime import runtime
from shared.errors import InvalidRequest


def requested_currency(requested: str | None) -> str:
    """The currency a request names, or the default when it names none. One this
    deployment doesn't support (CURRENCIES) is a 400 shaped like a schema's: the schemas
    know only the currencies the code can handle."""
    supported = runtime.settings().currencies
    if requested is None:
        return supported[0]
    if requested not in supported:
        message = f"Must be one of: {', '.join(supported)}."
        raise InvalidRequest(f"Validation failed: currency: {message}", {"currency": [message]})
    return requested
