"""Per-request access to settings and the process's clients."""

from __future__ import annotations

from flask import current_app

from shared.errors import InvalidRequest
from shared.runtime import Runtime
from shared.settings import Settings


def settings() -> Settings:
    return current_app.extensions["settings"]


def currency(requested: str | None) -> str:
    """The currency a request names, or the default when it names none. One this
    deployment doesn't support (CURRENCIES) is a 400 shaped like a schema's: the schemas
    know only the currencies the code can handle."""
    supported = settings().currencies
    if requested is None:
        return supported[0]
    if requested not in supported:
        message = f"Must be one of: {', '.join(supported)}."
        raise InvalidRequest(f"Validation failed: currency: {message}", {"currency": [message]})
    return requested


_runtime = Runtime(settings)
db = _runtime.db
redis_client = _runtime.redis_client
ledger = _runtime.ledger
monnify = _runtime.monnify
