"""The worker process's settings and clients, created lazily (after Celery's fork)."""

from __future__ import annotations

from functools import cache

from shared.runtime import Runtime
from shared.settings import Settings, load_settings


@cache
def settings() -> Settings:
    return load_settings()


_runtime = Runtime(settings)
db = _runtime.db
redis_client = _runtime.redis_client
ledger = _runtime.ledger
monnify = _runtime.monnify
