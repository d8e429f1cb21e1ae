"""Per-request access to settings and the process's clients."""

from __future__ import annotations

from flask import current_app

from shared.runtime import Runtime
from shared.settings import Settings


def settings() -> Settings:
    return current_app.extensions["settings"]


_runtime = Runtime(settings)
db = _runtime.db
redis_client = _runtime.redis_client
ledger = _runtime.ledger
monnify = _runtime.monnify
